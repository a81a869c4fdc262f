"""One `Runtime` per worker process, built from the environment after the fork.

Each pool process builds its own as it starts (`worker_process_init`) and opens its
Redis and S3 connections in the background, so no socket is shared between pool
processes and the first task does not pay for building clients (boto3's above all) or
connecting. A process that could not build it then builds it on first use, so the
error is raised in a task and logged there.
"""

from __future__ import annotations

import logging
import os
import threading

from celery.signals import worker_process_init, worker_process_shutdown

from pipeline.runtime import Runtime
from pipeline.settings import Settings

log = logging.getLogger(__name__)

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


@worker_process_init.connect
def _build_runtime(**_: object) -> None:
    try:
        built = runtime()
    except Exception:  # raised again, and logged, by the first task
        log.exception("could not build the worker runtime; retrying on first use")
        return
    # In the background: with Redis or S3 down it would take as long as their clients
    # retry (~30 s), and Celery gives a new pool process 4 s to come up
    # (`worker_proc_alive_timeout`) before it kills it.
    threading.Thread(target=built.warm_up, name="fillpipe-warm-up", daemon=True).start()


@worker_process_shutdown.connect
def _close_runtime(**_: object) -> None:
    global _runtime
    with _lock:
        if _runtime is not None and _owner_pid == os.getpid():
            _runtime.close()
        _runtime = None
