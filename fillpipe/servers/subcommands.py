"""The stack's own services: `fillpipe emulator|receiver|worker|beat` subprocesses."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fillpipe.ports import LOOPBACK, free_ports
from fillpipe.servers.base import PROBE_TIMEOUT_S, Probe, Service

BEAT_SETTLE_S = 1.0


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
            yield lambda: self._answers(app)
        finally:
            app.close()

    @staticmethod
    def _answers(app: Any) -> bool:
        try:
            return bool(app.control.ping(timeout=0.5))
        except Exception:  # the broker is not reachable yet (restarting, say)
            return False


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


class WatcherService(_PythonService):
    """`fillpipe watch s3 URI... --rules FILE --health-port P`, ready once its first
    listing succeeded (its /healthz answers 200)."""

    def __init__(
        self, log_path: Path, *, env: Mapping[str, str], uris: Sequence[str], rules_file: str
    ) -> None:
        super().__init__("watcher", log_path, env=env)
        self.uris = list(uris)
        self.rules_file = rules_file
        self.health_port = 0

    def _choose_ports(self) -> None:
        (self.health_port,) = free_ports(1)

    def _command(self) -> list[str]:
        return fillpipe_command(
            "watch",
            "s3",
            *self.uris,
            "--rules",
            self.rules_file,
            "--health-port",
            str(self.health_port),
        )

    @contextmanager
    def _probe(self) -> Iterator[Probe]:
        import httpx

        url = f"http://{LOOPBACK}:{self.health_port}/healthz"
        with httpx.Client(timeout=PROBE_TIMEOUT_S, trust_env=False) as client:

            def answers() -> bool:
                try:
                    return client.get(url).status_code == 200
                except httpx.HTTPError:
                    return False

            yield answers
