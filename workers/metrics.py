"""`MetricsStep`: a worker bootstep serving this process's Prometheus metrics.

With `FILLPIPE_METRICS_PORT` set, each worker process serves `pipeline.metrics`'s
`WORKER_REGISTRY` (its tasks' histograms and counters, and its own CPU, memory and GC)
at `http://FILLPIPE_METRICS_HOST:PORT/metrics` (127.0.0.1 unless said otherwise), from a
daemon thread. Unset: no exporter. A port already taken is logged and the worker runs
on without one: metrics are not worth stopping the work for.
"""

from __future__ import annotations

import logging
from wsgiref.simple_server import WSGIServer

from celery import bootsteps
from celery.worker import WorkController
from prometheus_client import start_http_server

from pipeline.errors import ConfigError
from pipeline.metrics import WORKER_REGISTRY
from pipeline.settings import Settings

log = logging.getLogger(__name__)


class MetricsStep(bootsteps.StartStopStep):
    """Starts the exporter as the worker starts, shuts it down as it stops."""

    def __init__(self, parent: WorkController, **kwargs: object) -> None:
        super().__init__(parent, **kwargs)
        self._server: WSGIServer | None = None

    def start(self, parent: WorkController) -> None:
        try:
            settings = Settings.from_environ()
        except ConfigError as error:  # the tasks report it too
            log.error("metrics: not served: %s", error)
            return
        if settings.metrics_port is None:
            return
        self._server = serve(settings.metrics_host, settings.metrics_port)

    def stop(self, parent: WorkController) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    terminate = stop


def serve(host: str, port: int) -> WSGIServer | None:
    """Serve the worker's metrics on `host:port`; None (logged) if it cannot bind."""
    try:
        server, _ = start_http_server(port, addr=host, registry=WORKER_REGISTRY)
    except OSError as error:
        log.error("metrics: cannot serve on %s:%d (%s); running without", host, port, error)
        return None
    log.info("metrics: serving Prometheus metrics at http://%s:%d/metrics", host, port)
    return server
