"""The embedded stack: real servers on 127.0.0.1 for whatever the environment lacks.

`fillpipe up` and `fillpipe demo` start, from pip-installed packages, a Valkey server
(unless FILLPIPE_REDIS_URL is set), a SeaweedFS S3 server (unless FILLPIPE_S3_ENDPOINT_URL
is set), the provider emulator (unless FILLPIPE_PROVIDER_URL is set), and the receiver,
a Celery worker and beat. Everything lives in one state dir:

    DIR/valkey/            AOF data (and the 0600 config holding the generated password)
    DIR/s3/                SeaweedFS data
    DIR/logs/<service>.log each server's stdout and stderr
    DIR/signing_key        callback signing key (0600), generated once
    DIR/provider_key       the emulator's API key (0600), generated once
    DIR/s3_credentials     the embedded S3 key pair (0600), generated once
    DIR/stack.env          `export NAME='value'` lines for other shells (0600), while up
    DIR/stack.pids         service name -> pid, while up
    DIR/celerybeat-schedule

With the embedded S3 server the generated key pair replaces any AWS_* credentials of the
caller's environment (which would name another account); with an external S3 they pass
through unchanged, as do every FILLPIPE_* setting already set.
"""

from __future__ import annotations

import atexit
import fcntl
import json
import secrets
import shlex
import signal
import sys
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from types import FrameType, TracebackType
from typing import IO

import click

from fillpipe.processes import tail_lines
from fillpipe.servers import (
    BeatService,
    HttpService,
    S3Credentials,
    SeaweedS3Server,
    Service,
    StackError,
    ValkeyServer,
    WorkerService,
    write_private,
)
from pipeline.settings import DEFAULT_BUCKET, DEFAULT_RESULT_HOSTS, redact_url

__all__ = ["EmbeddedStack", "StackError", "read_env_file", "run_foreground"]

SERVICES = ("emulator", "receiver", "worker", "beat")
DEFAULT_START_TIMEOUT_S = 60.0
WATCH_INTERVAL_S = 0.5
EXIT_FAILURE = 1
StartStep = Callable[[float], None]  # starts one server within a time budget in seconds
# With the embedded S3 server these would mix another account's session into our keys.
SHADOWED_BY_EMBEDDED_S3 = ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE")
PASSED_THROUGH = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


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


class EmbeddedStack:
    """Real servers on 127.0.0.1 for whatever the environment does not provide."""

    def __init__(
        self,
        state_dir: Path,
        environ: Mapping[str, str],
        *,
        services: Collection[str] = SERVICES,
        emulator_env: Mapping[str, str] | None = None,
    ) -> None:
        unknown = set(services) - set(SERVICES)
        if unknown:
            raise ValueError(f"unknown services {sorted(unknown)}; choose from {SERVICES}")
        self.state = StateDir(state_dir)
        self._environ = dict(environ)
        self._services = frozenset(services)
        self._emulator_env = dict(emulator_env or {})
        self._started: dict[str, Service] = {}
        self._env: dict[str, str] = {}
        self._lock: IO[str] | None = None
        self._wrote_env_file = False

    # -- lifecycle -------------------------------------------------------------------

    def start(self, *, timeout_s: float = DEFAULT_START_TIMEOUT_S) -> None:
        """Start every server the environment lacks; return once each one answers.

        On failure, stop what started and raise `StackError` (service, problem, log tail).
        """
        deadline = time.monotonic() + timeout_s
        self.state.create()
        self._lock = _lock_state_dir(self.state.root)
        atexit.register(self.stop)
        try:
            self._env = self._passed_through()
            for start_next in self._plan():
                start_next(max(deadline - time.monotonic(), 1.0))
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop every server this stack started, in reverse order; idempotent."""
        for service in reversed(list(self._started.values())):
            service.stop()
        self._started.clear()
        if self._wrote_env_file:
            self.state.env_file.unlink(missing_ok=True)
            self._wrote_env_file = False
        if self._lock is not None:
            self._lock.close()
            self._lock = None
        atexit.unregister(self.stop)

    def restart(self, service: str) -> None:
        """Stop and start one service on the same port(s), so `env` stays valid."""
        server = self._service(service)
        server.stop()
        server.start(timeout_s=DEFAULT_START_TIMEOUT_S)

    def kill(self, service: str) -> None:
        """SIGKILL one service's whole process group, as a crash would."""
        self._service(service).kill()

    def __enter__(self) -> EmbeddedStack:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- what clients read -------------------------------------------------------------

    @property
    def env(self) -> dict[str, str]:
        """Every setting a client needs (FILLPIPE_*, AWS_*), credentials included."""
        return dict(self._env)

    @property
    def pids(self) -> dict[str, int]:
        """Service name -> pid of each running server this stack started."""
        return {
            name: pid for name, service in self._started.items() if (pid := service.pid) is not None
        }

    def exited(self) -> list[str]:
        """The services this stack started that have ended since."""
        return [name for name, service in self._started.items() if service.exited()]

    def log_path(self, service: str) -> Path:
        """Where `service` logs."""
        return self.state.log(service)

    def log_tail(self, service: str, lines: int = 20) -> str:
        """The last `lines` lines of `service`'s log."""
        return tail_lines(self.log_path(service), lines)

    def write_env_file(self) -> Path:
        """Write DIR/stack.env (`export NAME='value'` lines, mode 0600); removed by `stop`."""
        lines = [
            f"export {name}={shlex.quote(value)}\n" for name, value in sorted(self._env.items())
        ]
        header = "# fillpipe embedded stack: source this file\n"
        write_private(self.state.env_file, header + "".join(lines))
        self._wrote_env_file = True
        return self.state.env_file

    # -- starting, in order ------------------------------------------------------------

    def _plan(self) -> Iterator[StartStep]:
        if not self._given("FILLPIPE_REDIS_URL"):
            yield self._start_valkey
        if not self._given("FILLPIPE_S3_ENDPOINT_URL"):
            yield self._start_s3
        if "emulator" in self._services and not self._given("FILLPIPE_PROVIDER_URL"):
            yield self._start_emulator
        if "receiver" in self._services:
            yield self._start_receiver
        if "worker" in self._services:
            yield self._start_worker
        if "beat" in self._services:
            yield self._start_beat

    def _start_valkey(self, timeout_s: float) -> None:
        valkey = ValkeyServer(
            self.state.root / "valkey", self.state.log("valkey"), environ=self._caller_environ()
        )
        self._launch(valkey, timeout_s)
        self._env["FILLPIPE_REDIS_URL"] = valkey.url

    def _start_s3(self, timeout_s: float) -> None:
        credentials = S3Credentials.load_or_create(self.state.root / "s3_credentials")
        s3 = SeaweedS3Server(
            self.state.root / "s3",
            self.state.log("s3"),
            credentials=credentials,
            bucket=self._env["FILLPIPE_BUCKET"],
            environ=self._caller_environ(),
        )
        self._launch(s3, timeout_s)
        self._env.update(s3.env)

    def _start_emulator(self, timeout_s: float) -> None:
        admin_token = (
            self._emulator_env.get("FILLPIPE_EMULATOR_ADMIN_TOKEN")
            or self._env.get("FILLPIPE_EMULATOR_ADMIN_TOKEN")
            or secrets.token_urlsafe(24)
        )
        provider_key = self._env.setdefault(
            "FILLPIPE_PROVIDER_KEY", self.state.secret("provider_key")
        )

        def environment(url: str) -> dict[str, str]:
            return {
                **self._child_env(),
                "FILLPIPE_EMULATOR_API_KEYS": provider_key,
                "FILLPIPE_EMULATOR_PUBLIC_URL": url,
                "FILLPIPE_EMULATOR_ADMIN_TOKEN": admin_token,
                **self._emulator_env,
            }

        emulator = HttpService("emulator", self.state.log("emulator"), env=environment)
        self._launch(emulator, timeout_s)
        hosts = self._environ.get("FILLPIPE_RESULT_HOSTS") or ",".join(DEFAULT_RESULT_HOSTS)
        self._env.update(
            {
                "FILLPIPE_PROVIDER_URL": emulator.url,
                "FILLPIPE_PROVIDER_FLAVOR": "bfl",
                "FILLPIPE_RESULT_HOSTS": f"{hosts},{emulator.url.removeprefix('http://')}",
                "FILLPIPE_EMULATOR_ADMIN_TOKEN": admin_token,
            }
        )

    def _start_receiver(self, timeout_s: float) -> None:
        def environment(url: str) -> dict[str, str]:
            return {"FILLPIPE_PUBLIC_URL": url, **self._child_env()}

        receiver = HttpService("receiver", self.state.log("receiver"), env=environment)
        self._launch(receiver, timeout_s)
        self._env.setdefault("FILLPIPE_PUBLIC_URL", receiver.url)

    def _start_worker(self, timeout_s: float) -> None:
        self._launch(WorkerService(self.state.log("worker"), env=self._child_env()), timeout_s)

    def _start_beat(self, timeout_s: float) -> None:
        beat = BeatService(
            self.state.log("beat"),
            env=self._child_env(),
            schedule=self.state.root / "celerybeat-schedule",
        )
        self._launch(beat, timeout_s)

    def _launch(self, service: Service, timeout_s: float) -> None:
        self._started[service.name] = service
        service.start(timeout_s=timeout_s)

    # -- environments ------------------------------------------------------------------

    def _given(self, name: str) -> bool:
        return bool(self._environ.get(name, "").strip())

    def _caller_environ(self) -> dict[str, str]:
        """The caller's environment; with the embedded S3, minus AWS session names."""
        if self._given("FILLPIPE_S3_ENDPOINT_URL"):
            return dict(self._environ)
        return {
            name: value
            for name, value in self._environ.items()
            if name not in SHADOWED_BY_EMBEDDED_S3
        }

    def _passed_through(self) -> dict[str, str]:
        """The caller's settings, plus the generated ones every service needs."""
        env = {
            name: value
            for name, value in self._caller_environ().items()
            if value.strip() and (name.startswith("FILLPIPE_") or name in PASSED_THROUGH)
        }
        env.setdefault("FILLPIPE_BUCKET", DEFAULT_BUCKET)
        env.setdefault("FILLPIPE_SIGNING_KEY", self.state.secret("signing_key"))
        env["FILLPIPE_STATE_DIR"] = str(self.state.root)
        return env

    def _child_env(self) -> dict[str, str]:
        """The caller's environment with the stack's settings on top."""
        return {**self._caller_environ(), **self._env}

    def _service(self, name: str) -> Service:
        try:
            return self._started[name]
        except KeyError:
            raise StackError(name, "this stack did not start it") from None


def _lock_state_dir(root: Path) -> IO[str]:
    """Hold DIR/stack.lock so two stacks never share one state dir (one Valkey per AOF)."""
    lock = (root / "stack.lock").open("a")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise StackError("stack", f"another fillpipe stack is running in {root}") from None
    return lock


def read_env_file(state_dir: Path) -> dict[str, str] | None:
    """The settings in DIR/stack.env, or None when no stack is up there."""
    path = StateDir(state_dir).env_file
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    env = {}
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            name, value = words[1].split("=", 1)
            env[name] = value
    return env


# -- fillpipe up ---------------------------------------------------------------------


class _StopRequested(BaseException):
    """SIGINT or SIGTERM arrived (a BaseException, so no probe swallows it)."""


def run_foreground(state_dir: Path, environ: Mapping[str, str]) -> None:
    """Run the stack until SIGINT/SIGTERM (return) or until a service dies (exit code 1)."""
    stack = EmbeddedStack(state_dir, environ)
    failed: str | None = None
    with _stop_signals():
        try:
            stack.start()
            _write_pids_file(stack)
            stack.write_env_file()
            _print_summary(stack)
            failed = _watch(stack)
        except _StopRequested:
            click.echo("\nStopping the stack …", err=True)
        except StackError as error:
            click.echo(f"fillpipe up: {error}", err=True)
            failed = error.service
        finally:
            _ignore_stop_signals()
            stack.stop()
            stack.state.pids_file.unlink(missing_ok=True)
    if failed is not None:
        sys.exit(EXIT_FAILURE)


def _watch(stack: EmbeddedStack) -> str:
    """Wait until a service exits; say which and where its log is."""
    while not (exited := stack.exited()):
        time.sleep(WATCH_INTERVAL_S)
    name = exited[0]
    click.echo(
        f"fillpipe up: {name} exited unexpectedly; its log: {stack.log_path(name)}", err=True
    )
    return name


@contextmanager
def _stop_signals() -> Iterator[None]:
    def request_stop(signum: int, frame: FrameType | None) -> None:
        raise _StopRequested

    previous = {
        signum: signal.signal(signum, request_stop) for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _ignore_stop_signals() -> None:
    """While stopping, a second Ctrl-C must not abandon half-stopped servers."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)


def _write_pids_file(stack: EmbeddedStack) -> None:
    stack.state.pids_file.write_text(json.dumps(stack.pids, indent=2) + "\n")


def _print_summary(stack: EmbeddedStack) -> None:
    env, pids = stack.env, stack.pids
    rows = [
        ("redis", redact_url(env.get("FILLPIPE_REDIS_URL", "")), "valkey"),
        ("s3", env.get("FILLPIPE_S3_ENDPOINT_URL", "(AWS)"), "s3"),
        ("bucket", env.get("FILLPIPE_BUCKET", ""), ""),
        ("provider", env.get("FILLPIPE_PROVIDER_URL", "(not set)"), "emulator"),
        ("receiver", env.get("FILLPIPE_PUBLIC_URL", "(not set)"), "receiver"),
    ]
    click.echo(f"fillpipe stack is up; state dir {stack.state.root}")
    for label, value, service in rows:
        origin = " (embedded)" if service in pids else ""
        click.echo(f"  {label:<9}{value}{origin}")
    running = ", ".join(f"{name} (pid {pid})" for name, pid in pids.items())
    click.echo(f"  running  {running}")
    click.echo(f"  logs     {stack.state.logs}/")
    click.echo(f"In another shell:  source {shlex.quote(str(stack.state.env_file))}")
    click.echo("Press Ctrl-C to stop.")
