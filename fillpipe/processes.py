"""Child processes in their own sessions, logging to a file, stopped as a process group.

Each child leads a new session (`start_new_session=True`), so a Ctrl-C typed in the
terminal reaches only the launcher, which then stops the children in order; and a
signal to the child's process group also reaches whatever the child forked.

The group is signalled only while its leader is unreaped (running or a zombie): its pid,
and so the group id, cannot be reused before we reap it, so we never signal a stranger.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

DEFAULT_GRACE_S = 10.0
EXIT_POLL_S = 0.05
TAIL_BYTES = 64 * 1024


class ManagedProcess:
    """One child process: spawn it, ask whether it exited, stop or kill its process group."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        log_path: Path,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.log_path = log_path
        self._argv = list(argv)
        self._env = dict(env)
        self._cwd = cwd
        self._popen: subprocess.Popen[bytes] | None = None
        self._log_offset = 0

    def spawn(self) -> None:
        """Start the child, its stdout and stderr appended to the log file."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self._log_offset = log.tell()
            log.write(f"--- fillpipe: starting {self.name} at {time.ctime()} ---\n".encode())
            log.flush()
            self._popen = subprocess.Popen(
                self._argv,
                env=self._env,
                cwd=self._cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        """The child's pid, which is also its process group and session id."""
        if self._popen is None:
            raise RuntimeError(f"{self.name} was never started")
        return self._popen.pid

    @property
    def returncode(self) -> int | None:
        """How the reaped child ended: its exit status, or -N if signal N ended it; None
        until it has been reaped (by `stop` or `kill`)."""
        return None if self._popen is None else self._popen.returncode

    def exited(self) -> bool:
        """Whether the child has ended (checked without reaping it)."""
        if self._popen is None or self._popen.returncode is not None:
            return True
        try:
            status = os.waitid(os.P_PID, self._popen.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return True
        return status is not None

    def stop(self, *, grace_s: float = DEFAULT_GRACE_S) -> None:
        """SIGTERM the group, wait up to `grace_s` for the child, SIGKILL what remains, reap.

        Idempotent: stopping a child that already ended only reaps it.
        """
        if self._reaped():
            return
        self._signal_group(signal.SIGTERM)
        self._wait_exited(grace_s)
        self._signal_group(signal.SIGKILL)
        self._reap()

    def kill(self) -> None:
        """SIGKILL the whole process group at once and reap the child (a crash, for tests)."""
        if self._reaped():
            return
        self._signal_group(signal.SIGKILL)
        self._reap()

    def log_tail(self, lines: int = 20) -> str:
        """The last `lines` lines this run wrote to the log."""
        return tail_lines(self.log_path, lines, start=self._log_offset)

    def _reaped(self) -> bool:
        return self._popen is None or self._popen.returncode is not None

    def _signal_group(self, signum: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signum)

    def _wait_exited(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not self.exited() and time.monotonic() < deadline:
            time.sleep(EXIT_POLL_S)

    def _reap(self) -> None:
        if self._popen is not None:
            self._popen.wait()


def tail_lines(path: Path, lines: int, *, start: int = 0) -> str:
    """The last `lines` lines of the file at `path`, reading no further back than `start`."""
    try:
        with path.open("rb") as file:
            size = file.seek(0, os.SEEK_END)
            file.seek(max(start, size - TAIL_BYTES))
            text = file.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def group_members(pgid: int) -> list[int]:
    """Pids of the live (not zombie) processes in process group `pgid` (Linux /proc)."""
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _live_member(entry / "stat", pgid):
            members.append(int(entry.name))
    return members


def _live_member(stat_path: Path, pgid: int) -> bool:
    try:
        stat = stat_path.read_text()
    except OSError:
        return False
    # Fields after the parenthesised command: state, ppid, pgrp, ...
    state, _ppid, group = stat.rsplit(")", 1)[1].split()[:3]
    return int(group) == pgid and state not in ("Z", "X")
