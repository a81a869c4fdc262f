"""The worker's process state: its `Runtime`, and whether it is stopping.

The runtime is built once per worker process, shared by its task threads: as the worker
starts (`worker_init`), with its Redis and S3 connections opened in the background, so
the first tasks do not pay for building clients (boto3's above all) or connecting. A
worker that could not build it then builds it on first use, so the error is raised in a
task and logged there.

`stopping` is set as the worker begins to stop, whatever the reason (a signal, a lost
broker), before its pool waits for the running tasks (`StopSignal`): a submit waiting
for a provider slot then gives its job back at once instead of holding the shutdown.
"""

from __future__ import annotations

import logging
import threading

from celery import bootsteps
from celery.signals import worker_init, worker_shutdown
from celery.worker import WorkController

from pipeline.runtime import Runtime
from pipeline.settings import Settings

log = logging.getLogger(__name__)

_lock = threading.Lock()
_runtime: Runtime | None = None
stopping = threading.Event()


def runtime() -> Runtime:
    """This process's runtime."""
    global _runtime
    with _lock:
        if _runtime is None:
            _runtime = Runtime.from_settings(Settings.from_environ())
        return _runtime


@worker_init.connect
def _build_runtime(**_: object) -> None:
    try:
        built = runtime()
    except Exception:  # raised again, and logged, by the first task
        log.exception("could not build the worker runtime; retrying on first use")
        return
    # In the background: with Redis or S3 down it would take as long as their clients
    # retry (~30 s), and the worker would not start consuming meanwhile.
    threading.Thread(target=built.warm_up, name="fillpipe-warm-up", daemon=True).start()


@worker_shutdown.connect
def _close_runtime(**_: object) -> None:
    global _runtime
    with _lock:
        if _runtime is not None:
            _runtime.close()
        _runtime = None


class StopSignal(bootsteps.StartStopStep):
    """Sets `stopping` when the worker stops; it starts after the pool, so it stops
    before the pool waits for its tasks."""

    requires = ("celery.worker.components:Pool",)

    def start(self, parent: WorkController) -> None:
        stopping.clear()

    def stop(self, parent: WorkController) -> None:
        stopping.set()

    def terminate(self, parent: WorkController) -> None:
        stopping.set()
