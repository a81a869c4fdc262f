"""The poller step: with callbacks off, a thread that claims due polls of active tasks.

`PollerStep` starts with the worker and says which mode it runs in (callbacks via the
public URL, or polling). With callbacks off it runs a `pipeline.polling.Poller` in a
thread of its own until the worker stops; the module `pipeline.polling` says why this
is a worker thread and not a beat entry.
"""

from __future__ import annotations

import logging

from celery.worker import WorkController

from pipeline.polling import Poller, mode_line
from workers.steps import ThreadStep

log = logging.getLogger(__name__)


class PollerStep(ThreadStep):
    """Logs the callbacks mode; with callbacks off, runs a `Poller` for as long as the
    worker runs."""

    def start(self, parent: WorkController) -> None:
        from workers.context import runtime

        rt = runtime()
        log.info("%s", mode_line(rt.settings))
        if not rt.settings.callbacks:
            self.run_loop(Poller(rt.ledger, clock=rt.clock).run, "fillpipe-poller")
