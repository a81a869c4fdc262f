"""`ThreadStep`: a worker bootstep that runs one loop in a thread of its own.

The outbox relay and the poller each run for as long as their worker does: started
after the pool, handed an event that is set when the worker stops, and joined (for up
to `STOP_TIMEOUT_S`) before the pool waits for its tasks.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from celery import bootsteps
from celery.worker import WorkController

STOP_TIMEOUT_S = 10.0


class ThreadStep(bootsteps.StartStopStep):
    """Runs `loop(stop)` in a daemon thread named `thread_name` (see `run_loop`)."""

    requires = ("celery.worker.components:Pool",)

    def __init__(self, parent: WorkController, **kwargs: object) -> None:
        super().__init__(parent, **kwargs)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_loop(self, loop: Callable[[threading.Event], None], thread_name: str) -> None:
        """Start `loop` in its thread; it returns once the stop event is set."""
        self._thread = threading.Thread(
            target=loop, args=(self._stop,), name=thread_name, daemon=True
        )
        self._thread.start()

    def stop(self, parent: WorkController) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=STOP_TIMEOUT_S)

    terminate = stop
