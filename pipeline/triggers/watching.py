"""What the long-running watchers share: a loop that outlives outages, and its health.

A watcher's loop calls one `poll` after another until it is told to stop. Trouble that
may pass (S3, SQS or Redis unreachable, throttled, restarting) is logged and waited out
with a growing pause; the loop never exits because of it. `Health` tells how long ago
the last poll succeeded.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import redis
from botocore.exceptions import BotoCoreError, ClientError

from pipeline.errors import FillpipeError

log = logging.getLogger(__name__)

FIRST_PAUSE_S = 1.0
MAX_PAUSE_S = 30.0
# Trouble worth waiting out: storage, queue and ledger errors, and the network's.
PASSING_TROUBLE: tuple[type[BaseException], ...] = (
    BotoCoreError,
    ClientError,
    redis.RedisError,
    FillpipeError,
    OSError,
)


@dataclass
class Health:
    """When the watcher's last poll succeeded, and how many events it has handed on."""

    clock: Callable[[], float] = time.monotonic
    last_ok: float | None = None
    events: int = 0
    trouble: str = ""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def ok(self, events: int) -> None:
        with self._lock:
            self.last_ok, self.trouble = self.clock(), ""
            self.events += events

    def failed(self, trouble: str) -> None:
        with self._lock:
            self.trouble = trouble

    def report(self, stale_after_s: float) -> tuple[bool, dict[str, object]]:
        """Whether the watcher is healthy (a poll succeeded within `stale_after_s`), and
        the figures behind it."""
        with self._lock:
            age = None if self.last_ok is None else self.clock() - self.last_ok
            healthy = age is not None and age <= stale_after_s
            return healthy, {"last_ok_age_s": age, "events": self.events, "trouble": self.trouble}


def run_until_stopped(
    name: str, poll: Callable[[], int], stopping: threading.Event, health: Health
) -> None:
    """Call `poll` (which returns how many events it handed on) until `stopping` is set,
    pausing 1, 2, 4 … 30 s after each failure that may pass."""
    pause_s = FIRST_PAUSE_S
    while not stopping.is_set():
        try:
            health.ok(poll())
            pause_s = FIRST_PAUSE_S
        except PASSING_TROUBLE as error:
            # The type and message only: a traceback per retry drowns the log.
            trouble = f"{type(error).__name__}: {error}"
            health.failed(trouble)
            log.warning("%s: %s; trying again in %.0f s", name, trouble, pause_s)
            stopping.wait(pause_s)
            pause_s = min(pause_s * 2, MAX_PAUSE_S)


def paced(
    poll: Callable[[], int], interval_s: float, stopping: threading.Event
) -> Callable[[], int]:
    """`poll`, then a pause of `interval_s` (cut short by `stopping`): for listings, which
    do not wait for news as a long poll does."""

    def paced_poll() -> int:
        handed_on = poll()
        stopping.wait(interval_s)
        return handed_on

    return paced_poll
