"""The makespan bench's provider-side figures: the greedy floor, the slot gaps and the
percentiles, on small cases worked out by hand."""

from __future__ import annotations

import math

import pytest

from bench.slots import greedy_floor_s, percentile, slot_gaps_s, slot_use

pytestmark = pytest.mark.timeout(30)


def test_the_floor_gives_each_task_to_the_first_slot_to_free() -> None:
    # Slot A runs the 3 s task; slot B the three 1 s tasks back to back (ends at 3).
    assert greedy_floor_s([3.0, 1.0, 1.0, 1.0], 2) == pytest.approx(3.0)
    # A fifth 1 s task goes to whichever slot frees first at 3: ends at 4.
    assert greedy_floor_s([3.0, 1.0, 1.0, 1.0, 1.0], 2) == pytest.approx(4.0)


def test_the_floor_keeps_the_acceptance_order() -> None:
    # 1, 1 first, then the 3 s task at 1: 4 s; the other order would give 3 s.
    assert greedy_floor_s([1.0, 1.0, 3.0, 1.0], 2) == pytest.approx(4.0)


def test_equal_tasks_fill_whole_waves() -> None:
    assert greedy_floor_s([2.0] * 48, 24) == pytest.approx(4.0)
    assert greedy_floor_s([], 3) == 0.0
    with pytest.raises(ValueError, match="at least 1"):
        greedy_floor_s([1.0], 0)


def test_each_acceptance_after_the_first_wave_pairs_with_the_next_finish() -> None:
    # Two slots. Task 1 (accepted at 0.1) finishes first, at 1.0; task 0 at 2.0.
    created = [0.0, 0.1, 1.05, 2.2, 3.1]
    finished = [2.0, 1.0, 3.0, 3.5, 4.0]
    # Finishes in order: 1.0, 2.0, 3.0 ...; the 3rd, 4th, 5th acceptances take them.
    assert slot_gaps_s(created, finished, 2) == pytest.approx([0.05, 0.2, 0.1])
    assert slot_gaps_s(created[:2], finished[:2], 2) == []


def test_the_gaps_do_not_depend_on_the_listing_order() -> None:
    created, finished = [1.05, 0.0, 0.1], [3.0, 2.0, 1.0]
    assert slot_gaps_s(created, finished, 2) == pytest.approx([0.05])


def test_percentiles_interpolate_between_ranks() -> None:
    values = [4.0, 1.0, 3.0, 2.0]
    assert percentile(values, 50) == pytest.approx(2.5)
    assert percentile(values, 99) == pytest.approx(3.97)  # rank 2.97: 3 + 0.97 x (4 - 3)
    assert (percentile(values, 0), percentile(values, 100)) == (1.0, 4.0)
    assert percentile([7.0], 99) == 7.0
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)
    with pytest.raises(ValueError, match="0-100"):
        percentile(values, 101)


def test_a_run_s_figures_from_the_task_list() -> None:
    tasks = [
        {"id": "c", "created_at": 101.1, "finished_at": 103.0},
        {"id": "a", "created_at": 100.0, "finished_at": 102.0},
        {"id": "b", "created_at": 100.5, "finished_at": 101.0},
        {"id": "late", "created_at": 104.0, "finished_at": None},  # still running
    ]

    use = slot_use(tasks, 2)

    assert use.tasks == 3
    assert use.makespan_s == pytest.approx(3.0)  # 100.0 to 103.0
    # Durations in acceptance order 2.0, 0.5, 1.9: slot B runs 0.5 then 1.9 (ends 2.4).
    assert use.floor_s == pytest.approx(2.4)
    assert use.ratio == pytest.approx(3.0 / 2.4)
    assert use.gaps_s == pytest.approx((0.1,))  # c accepted 0.1 s after b finished
    assert use.gap_ms(50) == pytest.approx(100.0)
    assert use.ramp_s == pytest.approx(0.5)  # the 2nd acceptance


def test_fewer_tasks_than_slots_have_no_gaps() -> None:
    use = slot_use([{"created_at": 1.0, "finished_at": 3.0}], 24)

    assert (use.tasks, use.ramp_s, use.gaps_s) == (1, 0.0, ())
    assert math.isnan(use.gap_ms(50))
    with pytest.raises(ValueError, match="no finished task"):
        slot_use([], 24)
