"""Webhook deliveries, captured with an injected `httpx.MockTransport`."""

import hashlib
import hmac
import json
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from emulator.webhooks import signature, webhook_body
from tests.emulator.helpers import (
    AUTH,
    FILL,
    WebhookReceiver,
    fill_body,
    finetune_body,
    submit,
)

HOOK_URL = "https://hooks.example/v1/callbacks/bfl/token-123"


def client_with(make_client, receiver: WebhookReceiver, **overrides: Any) -> TestClient:
    return make_client(webhook_transport=httpx.MockTransport(receiver), **overrides)


def test_the_ready_task_is_posted_with_its_secret(make_client) -> None:
    receiver = WebhookReceiver()
    client = client_with(make_client, receiver)
    task_id = submit(client, webhook_url=HOOK_URL, webhook_secret="s3cret", seed=9)["id"]

    [request] = receiver.wait_for(1)

    body = json.loads(request.content)
    assert str(request.url) == HOOK_URL
    assert request.method == "POST"
    assert request.headers["x-webhook-secret"] == "s3cret"
    assert request.headers["content-type"] == "application/json"
    assert "x-bfl-signature" not in request.headers
    assert body["task_id"] == task_id
    assert body["status"] == "SUCCESS"
    assert body["result"]["seed"] == 9
    assert body["result"]["prompt"] == "a red sofa"
    assert {"sample", "start_time", "end_time", "duration"} <= body["result"].keys()
    assert client.get(body["result"]["sample"]).status_code == 200


def test_the_task_is_ready_by_the_time_its_webhook_arrives(make_client) -> None:
    receiver = WebhookReceiver()
    client = client_with(make_client, receiver)
    submitted = submit(client, webhook_url=HOOK_URL)

    receiver.wait_for(1)

    assert client.get(submitted["polling_url"], headers=AUTH).json()["status"] == "Ready"


def test_the_result_shape_is_what_get_result_says(make_client) -> None:
    receiver = WebhookReceiver()
    client = client_with(make_client, receiver, webhook_shape="result")
    submitted = submit(client, webhook_url=HOOK_URL, webhook_secret="s3cret")

    [request] = receiver.wait_for(1)

    body = json.loads(request.content)
    polled = client.get(submitted["polling_url"], headers=AUTH).json()
    assert body["id"] == submitted["id"]
    assert body["status"] == "Ready"
    assert body.keys() == polled.keys()
    assert body["result"]["seed"] == polled["result"]["seed"]


def test_the_hmac_signature_when_enabled(make_client) -> None:
    receiver = WebhookReceiver()
    client = client_with(make_client, receiver, webhook_hmac=True)
    submit(client, webhook_url=HOOK_URL, webhook_secret="s3cret")

    [request] = receiver.wait_for(1)

    expected = hmac.new(b"s3cret", request.content, hashlib.sha256).hexdigest()
    assert request.headers["x-bfl-signature"] == f"sha256={expected}"


def test_no_secret_no_secret_headers(make_client) -> None:
    receiver = WebhookReceiver()
    client = client_with(make_client, receiver, webhook_hmac=True)
    submit(client, webhook_url=HOOK_URL)

    [request] = receiver.wait_for(1)

    assert "x-webhook-secret" not in request.headers
    assert "x-bfl-signature" not in request.headers


def test_no_webhook_url_no_delivery(make_client) -> None:
    receiver = WebhookReceiver()
    client = client_with(make_client, receiver)
    submitted = submit(client)
    client.post(FILL, json=fill_body(webhook_url=HOOK_URL), headers=AUTH)

    receiver.wait_for(1)

    assert len(receiver.requests) == 1
    assert submitted["id"] not in receiver.requests[0].content.decode()


def test_a_trained_finetune_reports_too(make_client) -> None:
    receiver = WebhookReceiver()
    client = client_with(make_client, receiver)
    body = finetune_body(webhook_url=HOOK_URL, webhook_secret="s3cret")
    finetune_id = client.post("/v1/finetune", json=body, headers=AUTH).json()["finetune_id"]

    [request] = receiver.wait_for(1)

    assert json.loads(request.content)["task_id"] == finetune_id
    assert json.loads(request.content)["status"] == "SUCCESS"
    assert request.headers["x-webhook-secret"] == "s3cret"


@pytest.mark.parametrize("failure", [500, 404, 302, None])
def test_a_failed_delivery_is_retried(make_client, failure: int | None) -> None:
    receiver = WebhookReceiver(failure, 200)
    client = client_with(make_client, receiver)
    submit(client, webhook_url=HOOK_URL, webhook_secret="s3cret")

    first, second = receiver.wait_for(2)

    assert first.content == second.content
    assert second.headers["x-webhook-secret"] == "s3cret"


@pytest.mark.timeout(30)
def test_delivery_gives_up_after_the_retries(make_client) -> None:
    receiver = WebhookReceiver(503)
    client = client_with(make_client, receiver, webhook_retries=2)
    submit(client, webhook_url=HOOK_URL)
    receiver.wait_for(3)

    submit(client, webhook_url=HOOK_URL + "-next")  # a later delivery still goes out

    assert [str(request.url) for request in receiver.wait_for(4)].count(HOOK_URL) == 3


def test_signature_is_hmac_sha256_of_the_raw_body() -> None:
    assert signature("key", b"{}") == (
        "sha256=" + hmac.new(b"key", b"{}", hashlib.sha256).hexdigest()
    )


@pytest.mark.parametrize(
    ("status", "worded"),
    [("Ready", "SUCCESS"), ("Error", "FAILED"), ("Content Moderated", "Content Moderated")],
)
def test_the_bfl_shape_words_statuses_its_way(status: str, worded: str) -> None:
    report = {"id": "t1", "status": status, "result": None, "progress": None}

    assert webhook_body(report, "bfl") == {"task_id": "t1", "status": worded, "result": None}
    assert webhook_body(report, "result") == report
