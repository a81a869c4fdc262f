"""The receiver under Starlette's TestClient, with a real Valkey ledger."""

import itertools
import json

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from pipeline.callbacks import MalformedCallback, parse_callback
from pipeline.ledger import Callback
from pipeline.models import EditParams, JobRef, JobSpec
from pipeline.recorder import CallbackRecorder
from pipeline.settings import Secret
from pipeline.signing import CallbackSigner, body_signature
from pipeline.states import JobState
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
def signer(clock):
    return CallbackSigner([KEY], max_age_s=3600, clock=clock)


@pytest.fixture
def client(signer, recorder):
    app = create_app(signer=signer, recorder=recorder)
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def job(ledger) -> JobRef:
    """A job submitted as attempt 1, awaiting its callback."""
    return new_job(ledger)


def new_job(ledger) -> JobRef:
    """A new job submitted as attempt 1, awaiting its callback."""
    ref = JobRef(f"r{next(_batches)}-{id(ledger):x}", "mug-01")
    spec = JobSpec(
        ref=ref,
        image_uri="s3://b/i.png",
        mask_uri="s3://b/m.png",
        output_uri="s3://b/o.png",
        params=EditParams(prompt="p", finetune_id="f"),
    )
    ledger.batches.create(ref.batch_id, [spec])  # dispatched at once, as attempt 1
    ledger.jobs.transition(ref, from_states=[JobState.DISPATCHED], to_state=JobState.SUBMITTING)
    ledger.jobs.transition(
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
    record = ledger.jobs.get(ref)
    [first] = ledger.scripts.accept_callbacks([Callback(ref, 1, final=True)])
    return record.state is JobState.AWAITING_RESULT and first == "collect"


def test_verified_callback_enqueues_collect_once(client, signer, ledger, job, enqueued):
    assert post(client, signer, job).status_code == 200
    assert post(client, signer, job).status_code == 200
    assert enqueued.read() == [(job, 1)]
    assert ledger.jobs.get(job).state is JobState.AWAITING_RESULT


def test_wrong_secret_is_401_and_changes_nothing(client, signer, ledger, job, enqueued):
    response = post(client, signer, job, secret="guessed", body=b"not json at all")
    assert response.status_code == 401
    assert response.json() == {"detail": "unauthorized"}
    assert enqueued.read() == []
    assert untouched(ledger, job)


def test_missing_secret_is_401(client, signer, job, enqueued):
    token = signer.token(job, 1)
    assert client.post(f"/v1/callbacks/bfl/{token}", content=b"{}").status_code == 401
    assert enqueued.read() == []


def test_forged_and_expired_tokens_are_401(client, signer, ledger, job, enqueued, clock):
    other = CallbackSigner([Secret("x" * 40)], max_age_s=3600, clock=clock)
    forged = post(client, other, job, secret=signer.webhook_secret(job, 1))
    assert forged.status_code == 401
    assert post(client, signer, job, token="garbage.token.here").status_code == 401
    token = signer.token(job, 1)
    clock.now += 3601
    assert post(client, signer, job, token=token).status_code == 401
    assert enqueued.read() == []
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
    assert enqueued.read() == []
    assert post(client, signer, job, body=body, headers=good).status_code == 200
    assert enqueued.read() == [(job, 1)]


def test_stale_attempt_is_acknowledged_but_ignored(client, signer, ledger, job, enqueued):
    assert post(client, signer, job, attempt=2).status_code == 200
    assert enqueued.read() == []


def test_unknown_job_is_404(client, signer, job, enqueued):
    missing = JobRef(job.batch_id, "no-such-job")
    assert post(client, signer, missing).status_code == 404
    assert enqueued.read() == []


def test_oversized_body_is_413(client, signer, job, enqueued):
    body = b"x" * (MAX_CALLBACK_BYTES + 1)
    assert post(client, signer, job, body=body).status_code == 413
    assert enqueued.read() == []


def test_healthz(client):
    assert client.get("/healthz").json() == {"status": "ok"}


def test_verified_body_that_is_not_json_content_is_415(client, signer, ledger, job, enqueued):
    for content_type in ("text/plain", "application/json; charset=latin-1", "multipart/x"):
        response = post(client, signer, job, headers={"content-type": content_type})
        assert response.status_code == 415, content_type
        assert response.json() == {"detail": "content type must be application/json"}
    assert enqueued.read() == []
    assert untouched(ledger, job)


def test_json_content_type_may_carry_a_utf8_charset(client, signer, job, enqueued):
    headers = {"content-type": 'Application/JSON; Charset="UTF-8"'}
    assert post(client, signer, job, headers=headers).status_code == 200
    assert enqueued.read() == [(job, 1)]


def test_content_type_is_checked_only_after_verification(client, signer, job):
    # An unverified request learns nothing, not even that its content type is wrong.
    response = post(client, signer, job, secret="guessed", headers={"content-type": "text/plain"})
    assert response.status_code == 401


def test_verified_but_malformed_body_is_400(client, signer, ledger, job, enqueued):
    for body in (b"not json", b"[]", b'{"task_id": 5, "status": "SUCCESS"}', b"[" * 5000):
        response = post(client, signer, job, body=body)
        assert response.status_code == 400, body[:20]
        assert response.json() == {"detail": "malformed callback body"}
    assert enqueued.read() == []
    assert untouched(ledger, job)


def test_running_task_callback_enqueues_nothing(client, signer, job, enqueued):
    body = b'{"task_id": "t-1", "status": "processing"}'
    assert post(client, signer, job, body=body).status_code == 200
    assert enqueued.read() == []


def test_required_signature(signer, recorder, job, enqueued):
    app = create_app(signer=signer, recorder=recorder, require_signature=True)
    body = b'{"id": "t-1", "status": "Ready"}'
    signed = {"x-bfl-signature": body_signature(signer.webhook_secret(job, 1), body)}
    with TestClient(app) as required:
        assert post(required, signer, job, body=body).status_code == 401
        assert enqueued.read() == []
        assert post(required, signer, job, body=body, headers=signed).status_code == 200
    assert enqueued.read() == [(job, 1)]


@pytest.mark.parametrize("declared", ["9" * 5000, "\u00b2", "-1", "1e9", " 12 "])
def test_odd_content_lengths_never_crash(client, signer, job, declared):
    # The test client writes its own Content-Length, so hand the app a raw ASGI request.
    messages: list[dict] = []
    scope = {
        "type": "http",
        "method": "POST",
        "path": f"/v1/callbacks/bfl/{signer.token(job, 1)}",
        "raw_path": b"",
        "query_string": b"",
        "headers": [
            (b"content-length", declared.encode("latin-1")),
            (b"x-webhook-secret", b"guessed"),
        ],
    }

    async def receive():
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message):
        messages.append(message)

    anyio.run(client.app, scope, receive, send)
    status = messages[0]["status"]
    assert status == (413 if declared == "9" * 5000 else 401)


def test_unmatched_paths_and_methods_answer_json(client):
    assert client.get("/nowhere").json() == {"detail": "not found"}
    response = client.get("/v1/callbacks/bfl/abc")
    assert response.status_code == 405
    assert response.json() == {"detail": "method not allowed"}


def test_openapi_describes_the_routes(client):
    schema = client.get("/openapi.json").json()
    operation = schema["paths"]["/v1/callbacks/bfl/{token}"]["post"]
    assert {p["name"] for p in operation["parameters"]} == {
        "token",
        "x-webhook-secret",
        "x-bfl-signature",
    }
    assert set(operation["responses"]) >= {"200", "400", "401", "404", "413", "415"}
    shapes = schema["components"]["schemas"]["Callback"]["oneOf"]
    assert len(shapes) == 2
    assert "/healthz" in schema["paths"]


def test_healthz_is_503_when_redis_is_gone(signer, ledger):
    # A ledger on a port nothing listens on (the Redis client retries: keep it short).
    import redis.asyncio

    dead = CallbackRecorder(
        lambda: redis.asyncio.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2),
        ledger.scripts.context,
    )
    app = create_app(signer=signer, recorder=dead)
    with TestClient(app) as test_client:
        response = test_client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"detail": "temporarily unavailable"}


# What an HTTP client can put in a path segment and a header: printable ASCII.
_printable = st.characters(min_codepoint=0x21, max_codepoint=0x7E)
_tokens = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="/?#%"),
    min_size=1,
    max_size=200,
)
_words = st.sampled_from(
    ["SUCCESS", "processing", "FAILED", "Content Moderated", "Ready", "Pending", "Error", "new"]
)
_valid_bodies = st.builds(
    lambda key, task_id, word, extra: json.dumps(
        {**extra, key: task_id, "status": word, "result": {"sample": "https://x", "seed": 1}}
    ).encode(),
    st.sampled_from(["task_id", "id"]),
    st.from_regex(r"[a-z0-9][a-z0-9-]{0,40}", fullmatch=True),
    _words,
    st.dictionaries(st.sampled_from(["progress", "details", "preview"]), st.none() | st.text()),
)
_any_bodies = (
    _valid_bodies
    | st.binary(max_size=2000)
    | st.builds(
        lambda value: json.dumps(value).encode(),
        st.recursive(
            st.none() | st.integers() | st.text(max_size=10),
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
            max_leaves=10,
        ),
    )
)


def _is_callback(body: bytes) -> bool:
    try:
        parse_callback(body)
    except MalformedCallback:
        return False
    return True


@settings(
    max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    token=st.sampled_from(["genuine", "genuine", "other-key", "expired"]) | _tokens,
    secret=st.just("genuine") | st.text(alphabet=_printable, max_size=100),
    signature=st.sampled_from(["absent", "genuine", "bogus"]),
    body=_any_bodies,
    content_type=st.sampled_from(
        ["application/json", "application/json; charset=utf-8", "text/plain", "", "a/b"]
    ),
)
def test_only_genuine_well_formed_callbacks_get_in(
    client, signer, ledger, enqueued, clock, token, secret, signature, body, content_type
):
    enqueued.clear()
    ref = new_job(ledger)
    genuine_secret = signer.webhook_secret(ref, 1)
    other = CallbackSigner([Secret("o" * 40)], max_age_s=3600, clock=clock)
    url_token = {
        "genuine": signer.token(ref, 1),
        "other-key": other.token(ref, 1),
        "expired": CallbackSigner([KEY], max_age_s=3600, clock=lambda: clock.now - 7200).token(
            ref, 1
        ),
    }.get(token, token)
    headers = {
        "x-webhook-secret": genuine_secret if secret == "genuine" else secret,
        "content-type": content_type,
    }
    if signature == "genuine":
        headers["x-bfl-signature"] = body_signature(genuine_secret, body)
    elif signature == "bogus":
        headers["x-bfl-signature"] = body_signature(genuine_secret, body + b"~")
    before = ledger.jobs.get(ref)

    response = client.post(f"/v1/callbacks/bfl/{url_token}", content=body, headers=headers)

    verified = (
        token == "genuine"
        and (secret == "genuine" or secret == genuine_secret)
        and signature != "bogus"
    )
    is_json = content_type.startswith("application/json") or not content_type
    valid = verified and is_json and _is_callback(body)
    assert 200 <= response.status_code < 500
    assert response.headers["content-type"] == "application/json"
    if not valid:
        assert response.status_code >= 400
        assert enqueued.read() == []
        assert ledger.jobs.get(ref) == before
        assert untouched(ledger, ref)
        if not verified:
            assert response.status_code in (401, 404)
        elif not is_json:
            assert response.status_code == 415
        else:
            assert response.status_code == 400
        return
    assert response.status_code == 200
    final = parse_callback(body).is_final
    assert enqueued.read() == ([(ref, 1)] if final else [])
    assert ledger.jobs.get(ref).state is JobState.AWAITING_RESULT


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=_any_bodies, shape_ok=st.booleans())
def test_genuine_callbacks_are_200_when_well_formed_else_400(
    client, signer, ledger, enqueued, body, shape_ok
):
    enqueued.clear()
    ref = new_job(ledger)
    if shape_ok:
        body = json.dumps({"id": "t-1", "status": "Ready", "extra": body.hex()}).encode()
    before = ledger.jobs.get(ref)
    response = post(client, signer, ref, body=body)
    if _is_callback(body):
        assert response.status_code == 200
        assert enqueued.read() == ([(ref, 1)] if parse_callback(body).is_final else [])
    else:
        assert response.status_code == 400
        assert enqueued.read() == []
        assert ledger.jobs.get(ref) == before
        assert untouched(ledger, ref)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    token=_tokens,
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
    assert enqueued.read() == []
    assert ledger.jobs.get(job).state is JobState.AWAITING_RESULT
