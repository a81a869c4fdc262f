"""A worker's exporter: the workers' registry over HTTP on the port asked for, and a
port already taken costs the worker its exporter, never its work."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fillpipe.ports import LOOPBACK, free_ports
from pipeline import metrics
from workers.metrics import serve

pytestmark = pytest.mark.timeout(20)


def test_the_exporter_serves_the_workers_registry_and_a_taken_port_is_survived(caplog):
    (port,) = free_ports(1)
    server = serve(LOOPBACK, port)
    assert server is not None
    try:
        metrics.credits_spent("exporter-test", 1.0)
        text = httpx.get(f"http://{LOOPBACK}:{port}/metrics", timeout=5).text
        names = {
            (sample.name, sample.labels.get("account"))
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }
        assert ("fillpipe_credits_spent_total", "exporter-test") in names
        assert ("process_cpu_seconds_total", None) in names
        assert serve(LOOPBACK, port) is None  # taken: logged, no exporter
        assert f"cannot serve on {LOOPBACK}:{port}" in caplog.text
    finally:
        server.shutdown()
        server.server_close()
