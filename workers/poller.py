"""The poller step: with callbacks off, a thread that claims due polls of active tasks.

`PollerStep` starts with the worker and says which mode it runs in (callbacks via the
public URL, or polling). With callbacks off it runs a `pipeline.polling.Poller` in a
thread of its own until the worker stops; the module `pipeline.polling` says why this
is a worker thread and not a beat entry.
"""

from __future__ import annotations

import logging
import threading

from celery import bootsteps
from celery.worker import WorkController

from pipeline.polling import Poller, mode_line

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 10.0


class PollerStep(bootsteps.StartStopStep):
    """Logs the callbacks mode; with callbacks off, runs a `Poller` for as long as the
    worker runs."""

    requires = ("celery.worker.components:Pool",)

    def __init__(self, parent: WorkController, **kwargs: object) -> None:
        super().__init__(parent, **kwargs)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, parent: WorkController) -> None:
        from workers.context import runtime

        rt = runtime()
        log.info("%s", mode_line(rt.settings))
        if rt.settings.callbacks:
            return
        poller = Poller(rt.ledger, clock=rt.clock)
        self._thread = threading.Thread(
            target=poller.run, args=(self._stop,), name="fillpipe-poller", daemon=True
        )
        self._thread.start()

    def stop(self, parent: WorkController) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=STOP_TIMEOUT_S)

    terminate = stop
