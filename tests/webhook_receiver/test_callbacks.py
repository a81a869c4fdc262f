"""The receiver under Starlette's TestClient, with a real Valkey ledger."""

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from pipeline.ledger import Ledger
from pipeline.models import EditParams, JobRef, JobSpec, JobState
from pipeline.settings import Secret
from pipeline.signing import CallbackSigner, body_signature
from webhook_receiver.app import MAX_CALLBACK_BYTES, create_app

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]

KEY = Secret("r" * 40)
_batches = itertools.count(1)


class Clock:
    now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def ledger(valkey_url):
    ledger = Ledger.from_url(valkey_url)
    yield ledger
    ledger.redis.close()


@pytest.fixture
def enqueued():
    return []


@pytest.fixture
def signer(clock):
    return CallbackSigner([KEY], max_age_s=3600, clock=clock)


@pytest.fixture
def client(signer, ledger, enqueued):
    app = create_app(
        signer=signer,
        ledger=ledger,
        enqueue_collect=lambda ref, attempt: enqueued.append((ref, attempt)),
    )
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def job(ledger) -> JobRef:
    """A job submitted as attempt 1, awaiting its callback."""
    ref = JobRef(f"r{next(_batches)}-{id(ledger):x}", "mug-01")
    spec = JobSpec(
        ref=ref,
        image_uri="s3://b/i.png",
        mask_uri="s3://b/m.png",
        output_uri="s3://b/o.png",
        params=EditParams(prompt="p", finetune_id="f"),
    )
    ledger.create_batch(ref.batch_id, [spec])
    ledger.transition(
        ref, from_states=[JobState.QUEUED], to_state=JobState.SUBMITTING, new_attempt=True
    )
    ledger.transition(
        ref,
        from_states=[JobState.SUBMITTING],
        to_state=JobState.AWAITING_RESULT,
        fields={"polling_url": "x"},
    )
    return ref


def post(
    client,
    signer,
    ref,
    *,
    attempt=1,
    secret=None,
    body=b'{"status": "SUCCESS"}',
    headers=None,
    token=None,
):
    token = token or signer.token(ref, attempt)
    sent = {
        "x-webhook-secret": secret or signer.webhook_secret(ref, attempt),
        "content-type": "application/json",
        **(headers or {}),
    }
    return client.post(f"/v1/callbacks/bfl/{token}", content=body, headers=sent)


def untouched(ledger, ref):
    record = ledger.get(ref)
    first = ledger.accept_callback(ref, 1, final=True, task_id=None)
    return record.state is JobState.AWAITING_RESULT and first == "collect"


def test_verified_callback_enqueues_collect_once(client, signer, ledger, job, enqueued):
    assert post(client, signer, job).status_code == 200
    assert post(client, signer, job).status_code == 200
    assert enqueued == [(job, 1)]
    assert ledger.get(job).state is JobState.AWAITING_RESULT


def test_wrong_secret_is_401_and_changes_nothing(client, signer, ledger, job, enqueued):
    response = post(client, signer, job, secret="guessed", body=b"not json at all")
    assert response.status_code == 401
    assert response.json() == {"detail": "unauthorized"}
    assert enqueued == []
    assert untouched(ledger, job)


def test_missing_secret_is_401(client, signer, job, enqueued):
    token = signer.token(job, 1)
    assert client.post(f"/v1/callbacks/bfl/{token}", content=b"{}").status_code == 401
    assert enqueued == []


def test_forged_and_expired_tokens_are_401(client, signer, ledger, job, enqueued, clock):
    other = CallbackSigner([Secret("x" * 40)], max_age_s=3600, clock=clock)
    forged = post(client, other, job, secret=signer.webhook_secret(job, 1))
    assert forged.status_code == 401
    assert post(client, signer, job, token="garbage.token.here").status_code == 401
    token = signer.token(job, 1)
    clock.now += 3601
    assert post(client, signer, job, token=token).status_code == 401
    assert enqueued == []
    assert untouched(ledger, job)


def test_all_failures_look_alike(client, signer, job):
    answers = {
        post(client, signer, job, secret="guessed").text,
        post(client, signer, job, token="garbage").text,
        post(client, signer, job, headers={"x-bfl-signature": "sha256=00"}).text,
    }
    assert answers == {'{"detail":"unauthorized"}'}


def test_body_signature_is_checked_when_present(client, signer, job, enqueued):
    body = b'{"status": "SUCCESS"}'
    secret = signer.webhook_secret(job, 1)
    good = {"x-bfl-signature": body_signature(secret, body)}
    bad = {"x-bfl-signature": body_signature(secret, body + b"!")}
    assert post(client, signer, job, body=body, headers=bad).status_code == 401
    assert enqueued == []
    assert post(client, signer, job, body=body, headers=good).status_code == 200
    assert enqueued == [(job, 1)]


def test_stale_attempt_is_acknowledged_but_ignored(client, signer, ledger, job, enqueued):
    assert post(client, signer, job, attempt=2).status_code == 200
    assert enqueued == []


def test_unknown_job_is_404(client, signer, job, enqueued):
    missing = JobRef(job.batch_id, "no-such-job")
    assert post(client, signer, missing).status_code == 404
    assert enqueued == []


def test_oversized_body_is_413(client, signer, job, enqueued):
    body = b"x" * (MAX_CALLBACK_BYTES + 1)
    assert post(client, signer, job, body=body).status_code == 413
    assert enqueued == []


def test_healthz(client):
    assert client.get("/healthz").json() == {"status": "ok"}


# What an HTTP client can put in a path segment and a header: printable ASCII.
_printable = st.characters(min_codepoint=0x21, max_codepoint=0x7E)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    token=st.text(
        alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="/?#%"),
        min_size=1,
        max_size=200,
    ),
    secret=st.text(alphabet=_printable, max_size=100),
    body=st.binary(max_size=2000),
    content_type=st.sampled_from(["application/json", "text/plain", "", "multipart/form-data"]),
)
def test_arbitrary_callbacks_never_get_in_or_crash(
    client, ledger, job, enqueued, token, secret, body, content_type
):
    response = client.post(
        f"/v1/callbacks/bfl/{token}",
        content=body,
        headers={"x-webhook-secret": secret, "content-type": content_type},
    )
    # 404 only when the client normalises a "." or ".." token away and no route matches.
    assert response.status_code in (401, 404)
    assert enqueued == []
    assert ledger.get(job).state is JobState.AWAITING_RESULT
