"""`/v1/events/s3` under Starlette's TestClient, with a real intake (Valkey, SeaweedFS):
MinIO's bucket webhook and an EventBridge API destination."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from urllib.parse import quote_plus

import pytest
import redis
from starlette.testclient import TestClient

from pipeline.ledger import Ledger
from pipeline.settings import Secret, Settings
from pipeline.signing import CallbackSigner
from pipeline.states import JobState
from pipeline.storage import S3Uri, Storage
from pipeline.triggers.intake import TriggerIntake, rolling_batch_id
from pipeline.triggers.rules import parse_rules
from tests.pipeline.fakes import png
from tests.triggers.conftest import SETTINGS_ENV, retouch_rule
from webhook_receiver.app import create_app
from webhook_receiver.events import EVENTS_ROUTE, EventHandlers

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

TOKEN = "t" * 40


@pytest.fixture
def prefix() -> str:
    return f"hooked-{uuid.uuid4().hex[:8]}/"


@pytest.fixture
def settings(valkey_url: str, s3_env: dict[str, str]) -> Settings:
    return Settings.from_environ({**s3_env, **SETTINGS_ENV, "FILLPIPE_REDIS_URL": valkey_url})


@pytest.fixture
def ledger(settings: Settings) -> Iterator[Ledger]:
    own = Ledger.from_settings(settings)
    own.redis.flushdb()
    yield own
    own.close()


@pytest.fixture
def storage(settings: Settings) -> Storage:
    return Storage.from_settings(settings)


@pytest.fixture
def client(settings, ledger, storage, recorder, prefix) -> Iterator[TestClient]:
    rules = parse_rules(retouch_rule(prefix, mask="alpha"), source="rules.toml")
    intake = TriggerIntake(rules, ledger=ledger, storage=storage, mask_wait_s=60)
    app = create_app(
        signer=CallbackSigner(settings.signing_keys, max_age_s=60),
        recorder=recorder,
        events=EventHandlers(intake, Secret(TOKEN)),
    )
    with TestClient(app) as test_client:
        yield test_client


def minio_event(key: str, etag: str, name: str = "s3:ObjectCreated:Put") -> dict:
    """What MinIO's webhook target posts: the S3 record shape, keys form-encoded."""
    encoded = quote_plus(key)
    return {
        "EventName": name,
        "Key": f"fillpipe/{encoded}",
        "Records": [
            {
                "eventVersion": "2.0",
                "eventSource": "minio:s3",
                "awsRegion": "",
                "eventTime": "2026-12-07T10:00:00.000Z",
                "eventName": name,
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "Config",
                    "bucket": {"name": "fillpipe", "arn": "arn:aws:s3:::fillpipe"},
                    "object": {
                        "key": encoded,
                        "size": 100,
                        "eTag": etag,
                        "contentType": "image/png",
                        "sequencer": "17F0A1B2C3D4E5F6",
                    },
                },
            }
        ],
    }


def eventbridge_event(key: str, etag: str) -> dict:
    """What an EventBridge API destination posts: the event, its key raw."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": "123456789012",
        "time": "2026-12-07T10:00:00Z",
        "region": "us-east-1",
        "resources": ["arn:aws:s3:::fillpipe"],
        "detail": {
            "version": "0",
            "bucket": {"name": "fillpipe"},
            "object": {"key": key, "size": 100, "etag": etag, "sequencer": "0062A1B2C3D4E5F6"},
            "reason": "PutObject",
        },
    }


def put(storage: Storage, key: str) -> str:
    storage.write(S3Uri("fillpipe", key), png(mode="RGBA"), content_type="image/png")
    head = storage.head(S3Uri("fillpipe", key))
    assert head is not None
    return head.etag


def jobs(ledger: Ledger) -> dict[str, JobState]:
    batch = rolling_batch_id("retouch", time.time())
    return {record.spec.image_uri: record.state for record in ledger.jobs.of_batch(batch)}


BEARER = {"Authorization": f"Bearer {TOKEN}"}


def test_minio_checks_the_endpoint_with_head(client):
    assert client.head(EVENTS_ROUTE).status_code == 200


def test_a_minio_post_with_its_bearer_token_makes_the_job(client, ledger, storage, prefix):
    key = f"{prefix}red boot+1 50%ü.png"
    etag = put(storage, key)

    answer = client.post(EVENTS_ROUTE, json=minio_event(key, etag), headers=BEARER)

    assert answer.status_code == 200, answer.text
    assert answer.json() == {"status": "ok", "events": 1, "jobs": 1}
    assert jobs(ledger) == {f"s3://fillpipe/{key}": JobState.DISPATCHED}
    again = client.post(EVENTS_ROUTE, json=minio_event(key, etag), headers=BEARER)
    assert again.json() == {"status": "ok", "events": 1, "jobs": 0}


def test_an_eventbridge_post_with_its_api_key_keeps_a_literal_plus(client, ledger, storage, prefix):
    key = f"{prefix}c+d.png"
    etag = put(storage, key)

    answer = client.post(
        EVENTS_ROUTE, json=eventbridge_event(key, etag), headers={"x-api-key": TOKEN}
    )

    assert answer.status_code == 200, answer.text
    assert jobs(ledger) == {f"s3://fillpipe/{key}": JobState.DISPATCHED}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {TOKEN}"},
        {"x-api-key": TOKEN[:-1]},
        {"x-api-key": ""},
    ],
)
def test_without_the_token_nothing_is_read(client, ledger, storage, prefix, headers):
    key = f"{prefix}a.png"
    etag = put(storage, key)

    answer = client.post(EVENTS_ROUTE, json=minio_event(key, etag), headers=headers)

    assert answer.status_code == 401
    assert answer.json() == {"detail": "unauthorized"}
    assert jobs(ledger) == {}


def test_test_events_deletes_and_unmatched_keys_are_acknowledged(client, ledger):
    test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "fillpipe"}
    deleted = minio_event("incoming/a.png", "x", name="s3:ObjectRemoved:Delete")
    unmatched = minio_event("elsewhere/a.png", "x")
    for body in (test_event, deleted, unmatched):
        answer = client.post(EVENTS_ROUTE, json=body, headers=BEARER)
        assert answer.status_code == 200, answer.text
        assert answer.json()["jobs"] == 0
    assert jobs(ledger) == {}


@pytest.mark.parametrize(
    "body", [b"", b"not json", b"[]", b"{}", b'{"Records": 7}', json.dumps([1, 2]).encode()]
)
def test_what_is_not_a_storage_event_is_a_400(client, body):
    answer = client.post(EVENTS_ROUTE, content=body, headers=BEARER)
    assert answer.status_code == 400
    assert answer.json() == {"detail": "not a storage event notification"}


def test_a_body_over_the_limit_is_a_413(client):
    answer = client.post(EVENTS_ROUTE, content=b"x" * (1024 * 1024 + 1), headers=BEARER)
    assert answer.status_code == 413


def test_without_rules_the_route_does_not_exist(settings, recorder):
    app = create_app(signer=CallbackSigner(settings.signing_keys, max_age_s=60), recorder=recorder)
    with TestClient(app) as test_client:
        assert test_client.post(EVENTS_ROUTE, json={}, headers=BEARER).status_code == 404


def test_when_redis_is_unreachable_the_sender_is_told_to_retry(settings, storage, recorder, prefix):
    key = f"{prefix}a.png"
    etag = put(storage, key)
    rules = parse_rules(retouch_rule(prefix, mask="alpha"), source="rules.toml")
    # A client without fillpipe's retries, so the outage shows at once.
    unreachable = Ledger(redis.Redis.from_url("redis://127.0.0.1:1/0"), slots=1)
    intake = TriggerIntake(rules, ledger=unreachable, storage=storage, mask_wait_s=60)
    app = create_app(
        signer=CallbackSigner(settings.signing_keys, max_age_s=60),
        recorder=recorder,
        events=EventHandlers(intake, Secret(TOKEN)),
    )
    with TestClient(app) as test_client:
        answer = test_client.post(EVENTS_ROUTE, json=minio_event(key, etag), headers=BEARER)

    assert answer.status_code == 503
    assert answer.json() == {"detail": "temporarily unavailable"}


def test_the_openapi_description_names_the_route_and_its_two_ways_to_authenticate(client):
    schema = client.get("/openapi.json").json()
    operation = schema["paths"][EVENTS_ROUTE]["post"]
    assert operation["security"] == [{"eventsBearer": []}, {"eventsApiKey": []}]
    assert set(operation["responses"]) == {"200", "400", "401", "413", "503"}
    assert "head" in schema["paths"][EVENTS_ROUTE]
