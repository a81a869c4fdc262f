"""Metrics on a whole embedded stack: a small batch runs through, then the receiver's
/metrics and the worker's exporter (FILLPIPE_METRICS_PORT) are scraped and parsed as
Prometheus parses them, and their counters and histograms match what the batch did.

A stack of its own, so every count starts from zero: callbacks on (the emulator calls
the receiver back), the emulator at 0.2 s per task.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from fillpipe.ports import free_ports
from fillpipe.samples import make_samples
from fillpipe.stack import EmbeddedStack
from pipeline.runtime import Runtime
from pipeline.settings import Settings
from pipeline.states import JobState
from tests.conftest import STACK_EMULATOR_ENV
from tests.stacks import hermetic_environ, running_stack, train_finetune, upload_batch
from tests.stacks import wait_until_done as wait_for_batch

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

JOBS = 4
SETTLE_S = 10.0
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(scope="module")
def metrics_port() -> int:
    return free_ports(1)[0]


@pytest.fixture(scope="module")
def metrics_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, metrics_port: int
) -> Iterator[EmbeddedStack]:
    environ = {**hermetic_environ(), "FILLPIPE_METRICS_PORT": str(metrics_port)}
    root = tmp_path_factory.mktemp("metrics-stack")
    with running_stack(request, root, environ, STACK_EMULATOR_ENV) as embedded:
        yield embedded


@pytest.fixture(scope="module")
def metrics_rt(metrics_stack: EmbeddedStack) -> Iterator[Runtime]:
    runtime = Runtime.from_settings(Settings.from_environ(metrics_stack.env))
    yield runtime
    runtime.close()


def scrape(url: str) -> Samples:
    """Every sample at `url`, as Prometheus parses the text: (name, labels) -> value."""
    response = httpx.get(url, timeout=10.0)
    response.raise_for_status()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def eventually(url: str, check: Callable[[Samples], bool]) -> Samples:
    """Scrape until `check` holds: a task's metrics are recorded just after its job moved."""
    deadline = time.monotonic() + SETTLE_S
    while True:
        samples = scrape(url)
        if check(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(0.2)


def test_the_receiver_and_a_worker_export_what_a_batch_did(metrics_stack, metrics_rt, metrics_port):
    rt = metrics_rt
    finetune_id = train_finetune(rt)
    samples = make_samples(JOBS, size_px=64)
    batch_id, _ = upload_batch(rt, finetune_id, samples, tags={"suite": "metrics"})
    summary = wait_for_batch(rt.ledger, batch_id, timeout_s=120)
    assert summary.counts == {JobState.STORED: JOBS}

    worker_url = f"http://127.0.0.1:{metrics_port}/metrics"
    worker = eventually(
        worker_url,
        lambda got: value(got, "fillpipe_collect_seconds_count", outcome="stored") == JOBS,
    )
    assert value(worker, "fillpipe_submit_seconds_count", outcome="awaiting_result") == JOBS
    assert value(worker, "fillpipe_collect_seconds_count", outcome="stored") == JOBS
    assert value(worker, "fillpipe_callback_to_stored_seconds_count") == JOBS
    assert 0 < value(worker, "fillpipe_callback_to_stored_seconds_sum") < JOBS * 30
    spent = value(worker, "fillpipe_credits_spent_total", account="default")
    assert spent == pytest.approx(summary.cost_credits)
    assert value(worker, "process_cpu_seconds_total")  # the process's own metrics too

    receiver = scrape(f"{metrics_stack.env['FILLPIPE_RECEIVER_URL']}/metrics")
    assert value(receiver, "fillpipe_callbacks_total", outcome="collect") == JOBS
    assert value(receiver, "fillpipe_callbacks_rejected_total", reason="token") == 0
    slots = rt.settings.accounts.total_slots
    assert value(receiver, "fillpipe_account_slots", account="default") == slots
    assert value(receiver, "fillpipe_account_slots_in_use", account="default") == 0
    assert value(receiver, "fillpipe_account_paused", account="default") == 0
    assert value(receiver, "fillpipe_ledger_up") == 1
    assert value(receiver, "fillpipe_batches_running") == 0  # the batch is done
    assert value(receiver, "fillpipe_jobs", state="queued") == 0
