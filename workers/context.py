"""One `Runtime` per worker process, built on first use from the environment.

Built lazily (after any fork) so no socket is shared between pool processes.
"""

from __future__ import annotations

import os
import threading

from celery.signals import worker_process_shutdown

from pipeline.runtime import Runtime
from pipeline.settings import Settings

_lock = threading.Lock()
_runtime: Runtime | None = None
_owner_pid = 0


def runtime() -> Runtime:
    """This process's runtime."""
    global _runtime, _owner_pid
    with _lock:
        if _runtime is None or _owner_pid != os.getpid():
            _runtime = Runtime.from_settings(Settings.from_environ())
            _owner_pid = os.getpid()
        return _runtime


@worker_process_shutdown.connect
def _close_runtime(**_: object) -> None:
    global _runtime
    with _lock:
        if _runtime is not None and _owner_pid == os.getpid():
            _runtime.close()
        _runtime = None
