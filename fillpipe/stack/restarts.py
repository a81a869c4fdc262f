"""When `fillpipe up` restarts a service that exited, and when it gives up on one.

Like docker compose's `restart: unless-stopped`: a service that exits is restarted after
a delay that doubles with each exit (1 s, 2 s, 4 s … up to 30 s) and falls back to the
first delay once the service has run long enough to count as healthy. A service that
exits soon after each start, several times in a row, is crash-looping: restarting it
again would only fill its log, so the stack gives up and says why.
"""

from __future__ import annotations

import time
from collections.abc import Callable

FIRST_DELAY_S = 1.0
MAX_DELAY_S = 30.0
HEALTHY_AFTER_S = 60.0
QUICK_EXIT_S = 10.0
CRASH_LOOP_EXITS = 5


class RestartPolicy:
    """One service's restart delays: call `started` at each start, `exited` at each exit.

    The delay doubles with each exit since the last run that lasted `healthy_after_s`;
    `crash_loop_exits` exits in a row, each within `quick_exit_s` of its start, mean a
    crash loop. `clock` returns seconds (monotonic); tests pass a fake one.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        first_delay_s: float = FIRST_DELAY_S,
        max_delay_s: float = MAX_DELAY_S,
        healthy_after_s: float = HEALTHY_AFTER_S,
        quick_exit_s: float = QUICK_EXIT_S,
        crash_loop_exits: int = CRASH_LOOP_EXITS,
    ) -> None:
        self._clock = clock
        self._first_delay_s = first_delay_s
        self._max_delay_s = max_delay_s
        self._healthy_after_s = healthy_after_s
        self.quick_exit_s = quick_exit_s
        self._crash_loop_exits = crash_loop_exits
        self._started_at = clock()
        self._next_delay_s = first_delay_s
        self._quick_exits_in_a_row = 0

    @property
    def quick_exits_in_a_row(self) -> int:
        """How many of the last exits in a row each came within `quick_exit_s` of a start."""
        return self._quick_exits_in_a_row

    def started(self) -> None:
        """The service (re)started now: its run time counts from here."""
        self._started_at = self._clock()

    def exited(self) -> float | None:
        """The service exited now: seconds to wait before restarting it, or None when it
        is crash-looping and should not be restarted."""
        ran_s = self._clock() - self._started_at
        if ran_s >= self._healthy_after_s:
            self._next_delay_s = self._first_delay_s
        if ran_s >= self.quick_exit_s:
            self._quick_exits_in_a_row = 0
        else:
            self._quick_exits_in_a_row += 1
        if self._quick_exits_in_a_row >= self._crash_loop_exits:
            return None
        delay_s = min(self._next_delay_s, self._max_delay_s)
        self._next_delay_s = delay_s * 2
        return delay_s
