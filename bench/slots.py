"""How a client used the provider's slots, from the provider's own task times.

Input: each task's `created_at` (the provider accepted the submit) and `finished_at`
(it turned Ready), as the emulator's `GET /admin/tasks` lists them. Nothing here looks
at the client: the same figures are computed for any client on the same provider.

- makespan: the last finish minus the first acceptance;
- floor: the same task durations, in acceptance order, replayed greedily on `slots`
  slots that all start at 0 and take each next task the instant they free (no
  turn-around at all): what a perfect client would have got from these draws;
- slot gaps: once every slot is in use, the (slots+k)-th accepted task can only have
  been accepted after k+1 tasks finished, so it fills the slot freed by the k-th task
  to finish (k from 0). Its gap is its acceptance minus that finish: the client's
  whole turn-around (webhook, bookkeeping, the next POST) as the provider saw it;
- ramp: from the first acceptance to the `slots`-th, how long the client took to fill
  every slot at the start.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SlotUse:
    """One run's provider-side figures (seconds)."""

    tasks: int
    makespan_s: float
    floor_s: float
    gaps_s: tuple[float, ...]
    ramp_s: float

    @property
    def ratio(self) -> float:
        return self.makespan_s / self.floor_s if self.floor_s > 0 else math.nan

    def gap_ms(self, q: float) -> float:
        """The `q`-th percentile of the slot gaps in ms (NaN when there are none)."""
        return percentile(self.gaps_s, q) * 1000 if self.gaps_s else math.nan


def slot_use(tasks: Iterable[Mapping[str, Any]], slots: int) -> SlotUse:
    """The figures of `tasks` (dicts with `created_at` and `finished_at`) on `slots`
    slots. Tasks that have not finished are left out."""
    ended = sorted(
        (task for task in tasks if task.get("finished_at") is not None),
        key=lambda task: task["created_at"],
    )
    if not ended:
        raise ValueError("no finished task")
    created = [float(task["created_at"]) for task in ended]
    finished = [float(task["finished_at"]) for task in ended]
    return SlotUse(
        tasks=len(ended),
        makespan_s=max(finished) - created[0],
        floor_s=greedy_floor_s(
            [end - start for start, end in zip(created, finished, strict=True)], slots
        ),
        gaps_s=tuple(slot_gaps_s(created, finished, slots)),
        ramp_s=created[min(slots, len(created)) - 1] - created[0],
    )


def greedy_floor_s(durations: Sequence[float], slots: int) -> float:
    """Makespan of `durations`, taken in order, each by the first slot to free, on
    `slots` slots that all start at 0, with no time between a finish and the next start."""
    if slots < 1:
        raise ValueError(f"slots must be at least 1, got {slots}")
    free = [0.0] * slots  # when each slot frees, as a heap
    end = 0.0
    for duration in durations:
        finish = heapq.heappop(free) + duration
        end = max(end, finish)
        heapq.heappush(free, finish)
    return end


def slot_gaps_s(created: Sequence[float], finished: Sequence[float], slots: int) -> list[float]:
    """For k = 0 .. len - slots - 1: the (slots+k)-th acceptance (0-based, in time
    order) minus the k-th finish (0-based, in time order), the finish that freed its
    slot."""
    accepted = sorted(created)
    freed = sorted(finished)
    return [accepted[slots + k] - freed[k] for k in range(len(accepted) - slots)]


def percentile(values: Iterable[float], q: float) -> float:
    """The `q`-th percentile (0-100) of `values`, interpolated linearly between the
    closest ranks (numpy's default): rank q/100 x (n - 1) of the sorted values."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"q must be within 0-100, got {q}")
    rank = q / 100 * (len(ordered) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)
