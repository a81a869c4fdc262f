"""A watcher's loop outlives trouble that may pass, and reports its health."""

from __future__ import annotations

import threading

import pytest
import redis
from botocore.exceptions import EndpointConnectionError

from pipeline.errors import StorageUnavailable
from pipeline.triggers.watching import MAX_PAUSE_S, Health, run_until_stopped
from tests.pipeline.conftest import Clock

pytestmark = pytest.mark.timeout(10)


class Stopping(threading.Event):
    """A stop signal whose waits return at once and are recorded (the loop's pauses)."""

    def __init__(self) -> None:
        super().__init__()
        self.pauses: list[float] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.pauses.append(timeout or 0.0)
        return self.is_set()


def test_failures_that_may_pass_are_waited_out_with_growing_pauses():
    troubles = [
        redis.ConnectionError("Connection refused"),
        EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
        StorageUnavailable("S3 request failed (SlowDown)"),
        *[OSError("network unreachable")] * 5,
    ]
    stopping = Stopping()
    health = Health()
    polls = 0

    def poll() -> int:
        nonlocal polls
        polls += 1
        if troubles:
            raise troubles.pop(0)
        stopping.set()
        return 3

    run_until_stopped("test", poll, stopping, health)

    assert polls == 9
    assert stopping.pauses == [1, 2, 4, 8, 16, MAX_PAUSE_S, MAX_PAUSE_S, MAX_PAUSE_S]
    assert health.events == 3 and health.trouble == ""


def test_a_programming_error_is_not_swallowed():
    def poll() -> int:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        run_until_stopped("test", poll, Stopping(), Health())


def test_health_is_good_while_polls_succeed_recently():
    clock = Clock()
    health = Health(clock=clock)
    assert health.report(60)[0] is False  # no poll yet

    health.ok(5)
    clock.now += 59
    healthy, figures = health.report(60)
    assert healthy and figures == {"last_ok_age_s": 59, "events": 5, "trouble": ""}

    health.failed("ConnectionError: refused")
    clock.now += 2
    healthy, figures = health.report(60)
    assert not healthy and figures["trouble"] == "ConnectionError: refused"
