"""The makespan bench's scheduling model: the greedy replay and the target's odds."""

from __future__ import annotations

import pytest

from bench.bench_makespan import greedy_makespan_s, target_odds

pytestmark = pytest.mark.timeout(30)


def test_greedy_fills_the_first_free_slot_in_order() -> None:
    # Slot A runs the 3 s task; slot B the three 1 s tasks back to back.
    assert greedy_makespan_s([3.0, 1.0, 1.0, 1.0], 2, turnaround_s=0.0) == pytest.approx(3.0)


def test_turn_around_is_paid_by_every_task_but_each_slot_first() -> None:
    # Slot B: 1 s, then 0.5 + 1, then 0.5 + 1 = 4 s; slot A's 3 s task ends first.
    assert greedy_makespan_s([3.0, 1.0, 1.0, 1.0], 2, turnaround_s=0.5) == pytest.approx(4.0)


def test_equal_tasks_with_no_turn_around_meet_the_ideal() -> None:
    assert greedy_makespan_s([2.0] * 48, 24, turnaround_s=0.0) == pytest.approx(4.0)


def test_the_odds_fall_as_the_turn_around_grows() -> None:
    bare_mean, bare_share = target_odds(480, 24, 2.0, 0.0)
    slow_mean, slow_share = target_odds(480, 24, 2.0, 0.030)
    # Jitter alone costs the ideal a few percent; 30 ms a turn costs 20 turns more.
    assert 1.0 < bare_mean < slow_mean
    assert slow_mean - bare_mean == pytest.approx(20 * 0.030 / 40, rel=0.5)
    assert 0.0 <= slow_share < bare_share <= 1.0


def test_the_odds_are_repeatable() -> None:
    assert target_odds(96, 24, 2.0, 0.01) == target_odds(96, 24, 2.0, 0.01)


def test_a_slot_that_starts_late_ends_late() -> None:
    # Slot B starts 0.5 s late: 0.5 + 1, then 0.1 + 1 = 2.6 s; slot A runs 1 + 0.1 + 1.
    durations = [1.0, 1.0, 1.0, 1.0]
    assert greedy_makespan_s(durations, 2, turnaround_s=0.1, starts=[0.0, 0.5]) == (
        pytest.approx(2.6)
    )
    with pytest.raises(ValueError, match="1 start times for 2 slots"):
        greedy_makespan_s(durations, 2, turnaround_s=0.0, starts=[0.0])


def test_a_slow_start_lowers_the_odds() -> None:
    instant_mean, instant_share = target_odds(480, 24, 2.0, 0.01)
    ramp = [0.4 * k / 23 for k in range(24)]  # the 24th task 0.4 s after the first
    ramped_mean, ramped_share = target_odds(480, 24, 2.0, 0.01, ramp)
    assert ramped_mean > instant_mean
    assert ramped_share < instant_share
