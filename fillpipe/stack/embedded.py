"""`EmbeddedStack`: real servers on 127.0.0.1 for whatever the environment lacks."""

from __future__ import annotations

import atexit
import json
import secrets
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO

from fillpipe.processes import tail_lines
from fillpipe.servers import (
    BeatService,
    HttpService,
    S3Credentials,
    SeaweedS3Server,
    Service,
    ValkeyServer,
    WatcherService,
    WorkerService,
)
from fillpipe.stack.env_file import write_env_file
from fillpipe.stack.state import StateDir, lock_state_dir
from pipeline.accounts import load_accounts
from pipeline.errors import StackError
from pipeline.settings import DEFAULT_BUCKET, DEFAULT_RESULT_HOSTS
from pipeline.triggers.rules import load_rules

SERVICES = ("emulator", "receiver", "worker", "beat", "watcher", "dashboard")
# Accounts without a base_url use the embedded emulator, whose URL is known only later.
EMULATOR_PLACEHOLDER_URL = "http://127.0.0.1"
DEFAULT_START_TIMEOUT_S = 60.0
StartStep = Callable[[float], None]  # starts one server within a time budget in seconds
# With the embedded S3 server these would mix another account's session into our keys.
SHADOWED_BY_EMBEDDED_S3 = ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE")
PASSED_THROUGH = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


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
        # Trigger rules (FILLPIPE_RULES_FILE), checked before anything starts: the
        # receiver takes storage events and a watcher polls the buckets they name.
        rules_file = self._environ.get("FILLPIPE_RULES_FILE", "").strip()
        self._rules = load_rules(Path(rules_file).resolve()) if rules_file else None
        # Provider accounts (FILLPIPE_ACCOUNTS_FILE), also checked first: the embedded
        # emulator serves each of them, with its slot limit.
        self._emulated_accounts = _emulated_accounts(self._environ)

    # -- lifecycle -------------------------------------------------------------------

    def start(self, *, timeout_s: float = DEFAULT_START_TIMEOUT_S) -> None:
        """Start every server the environment lacks; return once each one answers.

        On failure, stop what started and raise `StackError` (service, problem, log tail).
        """
        deadline = time.monotonic() + timeout_s
        self.state.create()
        self._lock = lock_state_dir(self.state.root)
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

    def reap(self, service: str) -> int | None:
        """Stop what is left of an exited service's process group; return how it ended
        (its exit status, or -N if signal N ended it). `restart` brings it back."""
        server = self._service(service)
        server.stop()
        return server.exit_code

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
        write_env_file(self.state.env_file, self._env)
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
        if "watcher" in self._services and self._rules is not None:
            yield self._start_watcher
        if "dashboard" in self._services:
            yield self._start_dashboard

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
                "FILLPIPE_EMULATOR_ACCOUNTS": self._emulated_accounts,
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
        """The receiver, on 127.0.0.1 (`FILLPIPE_RECEIVER_URL`). It is the callbacks'
        public URL only for the embedded emulator: a provider elsewhere cannot call a
        loopback address, so without a `FILLPIPE_PUBLIC_URL` of the user's the stack runs
        with callbacks off and polls instead."""
        callbacks_here = not self._given("FILLPIPE_PROVIDER_URL")

        def environment(url: str) -> dict[str, str]:
            own = {"FILLPIPE_PUBLIC_URL": url} if callbacks_here else {}
            return {**own, **self._child_env()}

        receiver = HttpService("receiver", self.state.log("receiver"), env=environment)
        self._launch(receiver, timeout_s)
        self._env["FILLPIPE_RECEIVER_URL"] = receiver.url
        if callbacks_here:
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

    def _start_watcher(self, timeout_s: float) -> None:
        """The listing poller over every bucket and prefix the trigger rules name (the
        embedded S3 server sends no notifications)."""
        assert self._rules is not None
        uris = [f"s3://{bucket}/{prefix}" for bucket, prefix in self._rules.watched()]
        watcher = WatcherService(
            self.state.log("watcher"),
            env=self._child_env(),
            uris=uris,
            rules_file=self._env["FILLPIPE_RULES_FILE"],
        )
        self._launch(watcher, timeout_s)

    def _start_dashboard(self, timeout_s: float) -> None:
        """The dashboard, on 127.0.0.1 (`FILLPIPE_DASHBOARD_URL`), behind the stack's
        dashboard token (`FILLPIPE_DASHBOARD_TOKEN`)."""
        dashboard = HttpService(
            "dashboard", self.state.log("dashboard"), env=lambda url: self._child_env()
        )
        self._launch(dashboard, timeout_s)
        self._env["FILLPIPE_DASHBOARD_URL"] = dashboard.url

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
        if "dashboard" in self._services:
            env.setdefault("FILLPIPE_DASHBOARD_TOKEN", self.state.secret("dashboard_token"))
        if self._rules is not None:
            env["FILLPIPE_RULES_FILE"] = self._rules.source
            env.setdefault("FILLPIPE_EVENTS_TOKEN", self.state.secret("events_token"))
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


def _emulated_accounts(environ: Mapping[str, str]) -> str:
    """`FILLPIPE_EMULATOR_ACCOUNTS` for the accounts of `FILLPIPE_ACCOUNTS_FILE`: each
    account's key with its slot limit, as the real provider enforces it (`{}` without
    the file). Raises `ConfigError` for a bad accounts file before anything starts."""
    path = environ.get("FILLPIPE_ACCOUNTS_FILE", "").strip()
    if not path:
        return "{}"
    accounts = load_accounts(path, environ, default_url=EMULATOR_PLACEHOLDER_URL)
    return json.dumps({account.key.reveal(): {"slots": account.slots} for account in accounts})
