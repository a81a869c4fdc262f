"""The receiver's /metrics: callbacks counted by outcome and rejection reason, and the
ledger's gauges, as Prometheus parses them (a real Valkey ledger)."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from pipeline.errors import VerificationError
from pipeline.metrics import LedgerCollector
from pipeline.models import EditParams, JobRef, JobSpec
from pipeline.settings import Secret
from pipeline.signing import SECRET_HEADER, SIGNATURE_HEADER, CallbackSigner, body_signature
from pipeline.states import JobState
from webhook_receiver import metrics
from webhook_receiver.app import MAX_CALLBACK_BYTES, create_app

pytestmark = pytest.mark.timeout(30)

KEY = Secret("m" * 40)
REJECTED = "fillpipe_callbacks_rejected_total"
Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]


@pytest.fixture
def signer():
    return CallbackSigner([KEY], max_age_s=3600)


@pytest.fixture
def client(signer, recorder, ledger):
    collector = LedgerCollector(ledger.redis, ledger.keys, ledger.pools)
    app = create_app(signer=signer, recorder=recorder, ledger_metrics=collector)
    with TestClient(app) as test_client:
        yield test_client


def awaiting(ledger, batch_id: str) -> JobRef:
    """A job submitted as attempt 1, holding a slot, awaiting its callback."""
    ref = JobRef(batch_id, "mug")
    spec = JobSpec(
        ref=ref,
        image_uri="s3://b/i.png",
        mask_uri=None,
        output_uri="s3://b/o.png",
        params=EditParams(prompt="p", finetune_id="f"),
    )
    ledger.batches.create(batch_id, [spec])
    assert ledger.slots.take(ref, 1) == "go"
    ledger.jobs.transition(ref, from_states=[JobState.DISPATCHED], to_state=JobState.SUBMITTING)
    ledger.jobs.transition(
        ref,
        from_states=[JobState.SUBMITTING],
        to_state=JobState.AWAITING_RESULT,
        fields={"polling_url": "x"},
    )
    return ref


def post(client, signer, ref, *, attempt=1, body=b'{"status": "SUCCESS"}', **headers):
    sent = {
        "x-webhook-secret": signer.webhook_secret(ref, attempt),
        "content-type": "application/json",
        **{name.replace("_", "-"): value for name, value in headers.items()},
    }
    token = signer.token(ref, attempt)
    return client.post(f"/v1/callbacks/bfl/{token}", content=body, headers=sent)


def scrape(client) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        family.name: {tuple(sorted(s.labels.items())): s.value for s in family.samples}
        for family in text_string_to_metric_families(response.text)
    }


def counted(samples: Samples, name: str, label: str) -> dict[str, float]:
    return {labels[0][1]: n for labels, n in samples[name].items() if labels[0][0] == label}


@pytest.mark.integration
def test_callbacks_are_counted_by_outcome_and_rejection_reason(client, signer, ledger):
    before = scrape(client)
    ref = awaiting(ledger, "mb1")
    secret = signer.webhook_secret(ref, 1)
    assert post(client, signer, ref).status_code == 200  # collect
    assert post(client, signer, ref).status_code == 200  # duplicate
    assert post(client, signer, ref, attempt=2).status_code == 200  # stale
    assert post(client, signer, JobRef("mb1", "nope")).status_code == 404  # unknown
    assert post(client, signer, ref, x_webhook_secret="guessed").status_code == 401
    bad = body_signature(secret, b"other")
    assert post(client, signer, ref, x_bfl_signature=bad).status_code == 401
    assert post(client, signer, ref, content_type="text/plain").status_code == 415
    assert post(client, signer, ref, body=b"[1]").status_code == 400
    assert post(client, signer, ref, body=b"x" * (MAX_CALLBACK_BYTES + 1)).status_code == 413
    token_401 = client.post("/v1/callbacks/bfl/garbage", content=b"{}")
    assert token_401.status_code == 401

    after = scrape(client)

    def delta(name: str, label: str) -> dict[str, float]:
        now, then = counted(after, name, label), counted(before, name, label)
        return {key: now[key] - then[key] for key in now if now[key] != then[key]}

    outcomes = delta("fillpipe_callbacks", "outcome")
    assert outcomes == {"collect": 1, "duplicate": 1, "stale": 1, "unknown": 1}
    reasons = delta("fillpipe_callbacks_rejected", "reason")
    assert reasons == {
        "secret": 1,
        "signature": 1,
        "media_type": 1,
        "body": 1,
        "too_large": 1,
        "token": 1,
    }
    assert set(counted(after, "fillpipe_callbacks_rejected", "reason")) == set(
        metrics.REJECT_REASONS
    )


@pytest.mark.integration
def test_metrics_include_the_ledgers_gauges_and_the_process(client, ledger):
    awaiting(ledger, "mb2")
    samples = scrape(client)
    assert samples["fillpipe_ledger_up"] == {(): 1.0}
    assert counted(samples, "fillpipe_account_slots", "account") == {"default": 24}
    assert counted(samples, "fillpipe_account_slots_in_use", "account") == {"default": 1}
    assert counted(samples, "fillpipe_jobs", "state")["awaiting_result"] == 1
    assert "process_cpu_seconds" in samples


def test_verification_failures_are_told_apart_by_their_check():
    signer = CallbackSigner([Secret("k" * 40)], max_age_s=3600)
    ref = JobRef("b1", "j1")
    token, secret = signer.token(ref, 1), signer.webhook_secret(ref, 1)
    body = b'{"task_id": "t1", "status": "SUCCESS"}'
    attempts = [
        ("token", "not-a-token", {SECRET_HEADER: secret}, False),
        ("secret", token, {SECRET_HEADER: "not-the-secret"}, False),
        ("signature", token, {SECRET_HEADER: secret}, True),
        ("signature", token, {SECRET_HEADER: secret, SIGNATURE_HEADER: "sha256=00"}, False),
    ]

    def rejected(reason: str) -> float:
        labels = {"reason": reason}
        return metrics.RECEIVER_REGISTRY.get_sample_value(REJECTED, labels) or 0.0

    for reason, presented, headers, required in attempts:
        before = rejected(reason)
        with pytest.raises(VerificationError) as caught:
            signer.verify(presented, headers, body, require_signature=required)
        metrics.verification_failed(caught.value)
        assert rejected(reason) == before + 1, caught.value
