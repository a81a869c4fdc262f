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
    DIR/stack.pids         service name -> pid of each running service, while up
    DIR/celerybeat-schedule

With the embedded S3 server the generated key pair replaces any AWS_* credentials of the
caller's environment (which would name another account); with an external S3 they pass
through unchanged, as do every FILLPIPE_* setting already set.

    state        `StateDir`: the paths, the generated-once secrets, the lock
    env_file     DIR/stack.env written and read back (`read_env_file`)
    embedded     `EmbeddedStack`: which servers to start, in order, with which settings
    foreground   `run_foreground`, the stack of `fillpipe up`, restarting what exits
    restarts     `RestartPolicy`: the delay before a restart, and when to give up
"""

from fillpipe.stack.embedded import DEFAULT_START_TIMEOUT_S, SERVICES, EmbeddedStack
from fillpipe.stack.env_file import read_env_file
from fillpipe.stack.foreground import run_foreground
from fillpipe.stack.state import StateDir
from pipeline.errors import StackError

__all__ = [
    "DEFAULT_START_TIMEOUT_S",
    "SERVICES",
    "EmbeddedStack",
    "StackError",
    "StateDir",
    "read_env_file",
    "run_foreground",
]
