"""The pipeline's metrics: what the seams record (a real Valkey and S3, a scripted
provider), and the ledger's gauges as a scrape reads them."""

from __future__ import annotations

import uuid

import pytest
import redis
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pipeline import metrics
from pipeline.collect import collect_job
from pipeline.errors import (
    AmbiguousSubmit,
    ConfigError,
    KeyRejected,
    NotReadyYet,
    OutOfCredits,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
    StorageUnavailable,
)
from pipeline.ledger import Callback, Ledger, PoolLimits, redis_client
from pipeline.ledger.keys import Keys
from pipeline.ledger.scripts import CALLBACK_MARK_TTL_S
from pipeline.metrics import WORKER_REGISTRY, LedgerCollector
from pipeline.models import EditParams, JobRef, JobSpec
from pipeline.reconcile import sweep
from pipeline.settings import Settings
from pipeline.states import JobState
from pipeline.submit import submit_job

pytestmark = pytest.mark.timeout(60)

POOLS = {"brand-a": PoolLimits(2), "brand-b": PoolLimits(3)}


def value(name: str, **labels: str) -> float:
    """A sample of the workers' registry (0 when it has none yet)."""
    return WORKER_REGISTRY.get_sample_value(name, labels) or 0.0


# -- recording, no servers -------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (RateLimited("busy", 2.0), "429"),
        (OutOfCredits("none"), "402"),
        (KeyRejected("no"), "auth"),
        (ProviderRejected("bad mask", 422), "422"),
        (ProviderUnavailable("refused"), "connect"),
        (AmbiguousSubmit("503"), "ambiguous"),
        (ValueError("?"), "other"),
    ],
)
def test_provider_errors_have_bounded_status_labels(error, status):
    assert metrics.provider_status(error) == status


def test_timed_labels_each_call_with_the_state_it_ended_in_or_what_it_raised():
    registry = CollectorRegistry()
    histogram = Histogram("t_seconds", "t", ["outcome"], registry=registry)

    @metrics.timed(histogram)
    def task(result):
        if isinstance(result, Exception):
            raise result
        return result

    assert task(JobState.STORED) is JobState.STORED
    assert task(None) is None
    for error in (NotReadyYet("x"), StorageUnavailable("x"), KeyError("x")):
        with pytest.raises(type(error)):
            task(error)
    counts = {
        outcome: registry.get_sample_value("t_seconds_count", {"outcome": outcome})
        for outcome in ("stored", "moved_on", "not_ready", "retry", "error")
    }
    assert counts == dict.fromkeys(counts, 1.0)


def test_reconcile_findings_and_credits_count_only_what_happened():
    before = {kind: value("fillpipe_reconcile_findings_total", kind=kind) for kind in ("polled",)}
    metrics.reconcile_findings({"polled": 2, "requeued": 0})
    assert value("fillpipe_reconcile_findings_total", kind="polled") == before["polled"] + 2
    assert (
        WORKER_REGISTRY.get_sample_value(
            "fillpipe_reconcile_findings_total", {"kind": "masks_settled"}
        )
        is not None
    )  # every kind is exported from the start, at 0 if nothing happened
    spent = value("fillpipe_credits_spent_total", account="unit")
    metrics.credits_spent("unit", 0.0)
    metrics.credits_spent("unit", 2.5)
    assert value("fillpipe_credits_spent_total", account="unit") == spent + 2.5


# -- the seams, on a real ledger and S3 --------------------------------------------------


def dispatched(rt, ref: JobRef) -> int:
    rt.ledger.slots.dispatch()
    record = rt.ledger.jobs.get(ref)
    assert record.state is JobState.DISPATCHED
    return record.attempt


@pytest.mark.integration
def test_a_job_records_submit_callback_to_stored_collect_and_credits(rt, new_job, fake):
    names = (
        ("fillpipe_submit_seconds_count", {"outcome": "awaiting_result"}),
        ("fillpipe_collect_seconds_count", {"outcome": "stored"}),
        ("fillpipe_callback_to_stored_seconds_count", {}),
        ("fillpipe_credits_spent_total", {"account": "default"}),
    )
    before = [value(name, **labels) for name, labels in names]
    ref = new_job()
    attempt = dispatched(rt, ref)
    assert submit_job(rt, ref, attempt) is JobState.AWAITING_RESULT
    [answer] = rt.ledger.scripts.accept_callbacks([Callback(ref, attempt, True, "task-1")])
    assert answer == "collect"
    assert collect_job(rt, ref, attempt) is JobState.STORED

    after = [value(name, **labels) for name, labels in names]
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 1, 4.5]
    waited_s = value("fillpipe_callback_to_stored_seconds_sum")
    assert 0 <= waited_s < 60


@pytest.mark.integration
@pytest.mark.parametrize(
    ("status", "label", "outcome"),
    [
        (429, "429", "queued"),
        (402, "402", "queued"),
        (403, "auth", "queued"),
        (599, "connect", "queued"),  # the fake's connect error
        (503, "ambiguous", "awaiting_result"),
        (422, "422", "failed"),
    ],
)
def test_refused_submits_count_provider_errors(rt, new_job, fake, status, label, outcome):
    fake.submit_status = status
    errors = value("fillpipe_provider_errors_total", account="default", status=label)
    submits = value("fillpipe_submit_seconds_count", outcome=outcome)
    ref = new_job()
    submit_job(rt, ref, dispatched(rt, ref))
    assert value("fillpipe_provider_errors_total", account="default", status=label) == errors + 1
    assert value("fillpipe_submit_seconds_count", outcome=outcome) == submits + 1


@pytest.mark.integration
def test_the_sweep_counts_what_it_found(rt, new_job, fake, clock):
    ref = new_job()
    submit_job(rt, ref, dispatched(rt, ref))
    polled = value("fillpipe_reconcile_findings_total", kind="polled")
    clock.now += rt.settings.deadlines.callback_late_s + 1
    assert ref in sweep(rt).polled
    assert value("fillpipe_reconcile_findings_total", kind="polled") == polled + 1


@pytest.mark.integration
def test_callback_to_stored_is_read_from_the_marks_ttl(valkey_url):
    client = redis_client(valkey_url)
    keys = Keys(f"m-{uuid.uuid4().hex[:12]}:")
    ref = JobRef("b1", "j:1")
    count = value("fillpipe_callback_to_stored_seconds_count")
    metrics.stored(client, keys, ref, 1)  # no callback named it (polled): not observed
    assert value("fillpipe_callback_to_stored_seconds_count") == count
    total_ms = CALLBACK_MARK_TTL_S * 1000
    client.set(metrics.callback_mark(keys, ref, 1), "1", px=total_ms - 1500)
    total = value("fillpipe_callback_to_stored_seconds_sum")
    metrics.stored(client, keys, ref, 1)
    assert value("fillpipe_callback_to_stored_seconds_count") == count + 1
    assert 1.5 <= value("fillpipe_callback_to_stored_seconds_sum") - total < 2.5
    client.close()


# -- the ledger at scrape time -----------------------------------------------------------


@pytest.fixture
def pools_ledger(valkey_url, clock):
    own = Ledger(
        redis_client(valkey_url),
        pools=POOLS,
        clock=clock,
        prefix=f"metrics-{uuid.uuid4().hex[:12]}:",
    )
    yield own
    own.close()


def scrape(collector: LedgerCollector) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """The collector's samples as Prometheus parses its text: name -> labels -> value."""
    registry = CollectorRegistry()
    registry.register(collector)
    text = generate_latest(registry).decode()
    return {
        family.name: {tuple(sorted(s.labels.items())): s.value for s in family.samples}
        for family in text_string_to_metric_families(text)
    }


def specs(batch: str, account: str, count: int) -> list[JobSpec]:
    return [
        JobSpec(
            ref=JobRef(batch, f"{account}-{index}"),
            image_uri="s3://fillpipe/in.png",
            mask_uri=None,
            output_uri=f"s3://fillpipe/out/{batch}/{index}.png",
            params=EditParams(prompt="p", finetune_id="ft"),
            account=account,
        )
        for index in range(count)
    ]


@pytest.mark.integration
def test_the_ledger_gauges_show_jobs_by_state_and_each_accounts_pool(pools_ledger, clock):
    ledger = pools_ledger
    ledger.batches.create("b1", specs("b1", "brand-a", 6) + specs("b1", "brand-b", 1))
    ledger.batches.create("b2", specs("b2", "brand-a", 1))
    for ref in [JobRef("b1", "brand-a-0"), JobRef("b1", "brand-b-0")]:
        assert ledger.slots.take(ref, 1) == "go"
    ledger.account("brand-b").pause("402: no credits")
    collector = LedgerCollector(ledger.redis, ledger.keys, ledger.pools, clock=clock)

    samples = scrape(collector)

    assert samples["fillpipe_ledger_up"] == {(): 1.0}
    jobs = {labels[0][1]: n for labels, n in samples["fillpipe_jobs"].items()}
    expected = dict.fromkeys(JobState, 0)
    for batch_id in ("b1", "b2"):
        for state, n in ledger.batches.summary(batch_id).counts.items():
            expected[state] += n
    assert jobs == {state.value: n for state, n in expected.items()}
    assert jobs["queued"] and jobs["dispatched"]
    assert sum(jobs.values()) == 8
    assert samples["fillpipe_batches_running"] == {(): 2.0}

    def by_account(name: str) -> dict[str, float]:
        return {labels[0][1]: n for labels, n in samples[f"fillpipe_{name}"].items()}

    assert by_account("account_slots") == {"brand-a": 2, "brand-b": 3}
    assert by_account("account_slots_in_use") == {"brand-a": 1, "brand-b": 1}
    assert by_account("account_paused") == {"brand-a": 0, "brand-b": 1}
    assert by_account("account_ready_batches")["brand-a"] == 2
    assert by_account("jobs_waiting") == {"brand-a": 0, "brand-b": 0}


@pytest.mark.integration
def test_the_ledger_gauges_say_when_redis_does_not_answer(pools_ledger):
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    samples = scrape(LedgerCollector(dead, pools_ledger.keys, pools_ledger.pools))
    assert samples == {"fillpipe_ledger_up": {(): 0.0}}


# -- the settings ------------------------------------------------------------------------

REQUIRED = {
    "FILLPIPE_REDIS_URL": "redis://127.0.0.1:1/0",
    "FILLPIPE_PROVIDER_URL": "https://api.example.com",
    "FILLPIPE_PROVIDER_KEY": "key",
    "FILLPIPE_SIGNING_KEY": "k" * 40,
}


def test_a_workers_exporter_is_off_unless_a_port_is_set():
    settings = Settings.from_environ(REQUIRED)
    assert (settings.metrics_port, settings.metrics_host) == (None, "127.0.0.1")
    chosen = Settings.from_environ(
        {**REQUIRED, "FILLPIPE_METRICS_PORT": "9100", "FILLPIPE_METRICS_HOST": "0.0.0.0"}
    )
    assert (chosen.metrics_port, chosen.metrics_host) == (9100, "0.0.0.0")


@pytest.mark.parametrize("port", ["0", "65536", "http", "-1"])
def test_a_metrics_port_out_of_range_is_refused(port):
    with pytest.raises(ConfigError, match="FILLPIPE_METRICS_PORT"):
        Settings.from_environ({**REQUIRED, "FILLPIPE_METRICS_PORT": port})
