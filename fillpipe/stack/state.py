"""A stack's state directory: its paths, its generated-once secrets, its lock."""

from __future__ import annotations

import fcntl
import secrets
from contextlib import suppress
from pathlib import Path
from typing import IO

from fillpipe.private_files import write_private
from pipeline.errors import StackError


class StateDir:
    """The paths of one stack's state directory, and its generated-once secrets."""

    def __init__(self, root: Path) -> None:
        self.root = root.expanduser().resolve()

    def create(self) -> None:
        """Create the directory, owner-only when new (logs and data are private)."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def log(self, service: str) -> Path:
        return self.logs / f"{service}.log"

    @property
    def env_file(self) -> Path:
        return self.root / "stack.env"

    @property
    def pids_file(self) -> Path:
        return self.root / "stack.pids"

    def secret(self, name: str) -> str:
        """The secret in DIR/`name`, generated (`token_urlsafe(48)`, 0600) the first time."""
        path = self.root / name
        if not path.exists():
            with suppress(FileExistsError):
                write_private(path, secrets.token_urlsafe(48), exclusive=True)
        return path.read_text().strip()


def lock_state_dir(root: Path) -> IO[str]:
    """Hold DIR/stack.lock so two stacks never share one state dir (one Valkey per AOF)."""
    lock = (root / "stack.lock").open("a")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise StackError("stack", f"another fillpipe stack is running in {root}") from None
    return lock
