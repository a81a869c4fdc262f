"""A server process: ports chosen at start, probed until it is ready, stopped as a group.

Each service runs in its own session (`fillpipe.processes`), so a Ctrl-C in the terminal
reaches only the launcher, and the stack stops the services in reverse start order.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import Enum
from pathlib import Path

from fillpipe.processes import ManagedProcess
from pipeline.errors import StackError

START_ATTEMPTS = 3
POLL_INTERVAL_S = 0.1
LOG_TAIL_LINES = 20
PROBE_TIMEOUT_S = 1.0

Probe = Callable[[], bool]


class _Outcome(Enum):
    READY = "ready"
    EXITED = "exited during start-up"
    TIMED_OUT = "did not become ready in time"


class Service(ABC):
    """One server process: chooses its ports, starts, answers a probe, stops.

    A failed first start is retried with new ports (another process may have taken one
    of them); `start()` after `stop()` reuses the ports, so published URLs stay valid.
    """

    name: str

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self._process: ManagedProcess | None = None
        self._ports_published = False

    def start(self, *, timeout_s: float = 60.0) -> None:
        """Start the server and return once it answers; raise `StackError` otherwise."""
        deadline = time.monotonic() + timeout_s
        for attempt in range(1, START_ATTEMPTS + 1):
            if not self._ports_published:
                self._choose_ports()
            outcome = self._spawn_and_wait(deadline)
            if outcome is _Outcome.READY:
                self._ports_published = True
                return
            tail = self.log_tail()
            self.stop()
            if outcome is _Outcome.TIMED_OUT or self._ports_published or attempt == START_ATTEMPTS:
                raise StackError(self.name, f"{outcome.value} (log: {self.log_path})", tail)

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after a grace period); idempotent."""
        if self._process is not None:
            self._process.stop()

    def kill(self) -> None:
        """SIGKILL the server's whole process group, as a crash would."""
        if self._process is not None:
            self._process.kill()

    @property
    def pid(self) -> int | None:
        """The pid of the running server process, if there is one."""
        return None if self._process is None or self._process.exited() else self._process.pid

    def exited(self) -> bool:
        """Whether the server was started and has ended since."""
        return self._process is not None and self._process.exited()

    @property
    def exit_code(self) -> int | None:
        """How the last run ended once stopped: exit status, or -N for signal N."""
        return None if self._process is None else self._process.returncode

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last lines the current run of the server logged."""
        return "" if self._process is None else self._process.log_tail(lines)

    def _spawn_and_wait(self, deadline: float) -> _Outcome:
        process = ManagedProcess(
            self.name, self._command(), env=self._environment(), log_path=self.log_path
        )
        self._process = process
        process.spawn()
        with self._probe() as answers:
            while True:
                if process.exited():
                    return _Outcome.EXITED
                if answers() and not process.exited():
                    return _Outcome.READY
                if time.monotonic() > deadline:
                    return _Outcome.TIMED_OUT
                time.sleep(POLL_INTERVAL_S)

    @abstractmethod
    def _choose_ports(self) -> None:
        """Pick the free ports the next start binds."""

    @abstractmethod
    def _command(self) -> list[str]:
        """The argv of the server."""

    @abstractmethod
    def _environment(self) -> dict[str, str]:
        """The environment of the server process."""

    @abstractmethod
    @contextmanager
    def _probe(self) -> Iterator[Probe]:
        """A callable that tells whether the server answers (clients built once per start)."""
