"""moto's server (S3, SQS, SNS, EventBridge in one process), for the trigger tests and
bench: its S3 sends real notifications to its own SQS queues, SNS topics and EventBridge
rules."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from fillpipe.ports import LOOPBACK, free_ports
from fillpipe.servers.base import PROBE_TIMEOUT_S, Probe, Service

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"


class MotoServer(Service):
    """`moto_server` on a loopback port."""

    name = "moto"

    def __init__(self, log_path: Path, environ: dict[str, str]) -> None:
        super().__init__(log_path)
        self._environ = environ
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def env(self) -> dict[str, str]:
        """The settings of a client of this server: S3 for fillpipe, SQS for boto3."""
        return {
            "FILLPIPE_S3_ENDPOINT_URL": self.url,
            "FILLPIPE_S3_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL_SQS": self.url,
        }

    def _choose_ports(self) -> None:
        (self.port,) = free_ports(1)

    def _command(self) -> list[str]:
        return [sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", str(self.port)]

    def _environment(self) -> dict[str, str]:
        return dict(self._environ)

    @contextmanager
    def _probe(self) -> Iterator[Probe]:
        with httpx.Client(timeout=PROBE_TIMEOUT_S) as client:

            def answers() -> bool:
                try:
                    return client.get(f"{self.url}/moto-api/").status_code < 500
                except httpx.HTTPError:
                    return False

            yield answers
