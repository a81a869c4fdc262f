"""Injected faults through the HTTP API, switched with `PUT /admin/faults`."""

import json
import time
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from emulator.faults import Faults
from tests.emulator.helpers import (
    ADMIN_TOKEN,
    AUTH,
    FILL,
    KEY,
    WebhookReceiver,
    fill_body,
    run_fill,
    submit,
    wait_for_final,
)

ADMIN = {"x-admin-token": ADMIN_TOKEN}
HOOK_URL = "https://hooks.example/v1/callbacks/bfl/first"
NEXT_HOOK_URL = "https://hooks.example/v1/callbacks/bfl/second"
SLOW_S = 0.3


def set_faults(client: TestClient, **changes: Any) -> dict[str, Any]:
    response = client.put("/admin/faults", json=changes, headers=ADMIN)
    assert response.status_code == 200, response.text
    return response.json()


def account(client: TestClient) -> dict[str, Any]:
    return client.get("/admin/stats", headers=ADMIN).json()["accounts"].get(KEY, {})


def task_ids(client: TestClient) -> list[str]:
    return [task["id"] for task in client.get("/admin/tasks", headers=ADMIN).json()["tasks"]]


def hooked_client(make_client, receiver: WebhookReceiver, **overrides: Any) -> TestClient:
    return make_client(webhook_transport=httpx.MockTransport(receiver), **overrides)


# -- submit --------------------------------------------------------------------------------


def test_submit_429_creates_nothing(client: TestClient) -> None:
    set_faults(client, submit_429=1)

    response = client.post(FILL, json=fill_body(), headers=AUTH)

    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"
    assert task_ids(client) == []
    assert account(client).get("charged_credits", 0) == 0


def test_submit_500_creates_nothing(client: TestClient) -> None:
    set_faults(client, submit_500=1)

    response = client.post(FILL, json=fill_body(), headers=AUTH)

    assert response.status_code == 500
    assert response.json() == {"detail": "Internal Server Error"}
    assert task_ids(client) == []
    assert account(client).get("submitted_tasks", 0) == 0


def test_submit_500_after_create_leaves_a_charged_task(client: TestClient) -> None:
    set_faults(client, submit_500_after_create=1)

    response = client.post(FILL, json=fill_body(), headers=AUTH)
    [task_id] = task_ids(client)
    result = wait_for_final(client, f"/v1/get_result?id={task_id}")

    assert response.status_code == 500
    assert result["status"] == "Ready"
    assert account(client)["submitted_tasks"] == 1
    assert account(client)["charged_credits"] == 0.02


def test_submit_faults_at_zero_let_submits_through(client: TestClient) -> None:
    set_faults(client, submit_429=0, submit_500=0, submit_500_after_create=0)

    assert run_fill(client)["status"] == "Ready"


def test_a_seed_reproduces_a_mixed_sequence_of_submit_faults(client: TestClient) -> None:
    def statuses() -> list[int]:
        # An empty body is refused 422 after the fault draws: no image work needed.
        return [client.post(FILL, json={}, headers=AUTH).status_code for _ in range(30)]

    set_faults(client, seed=5, submit_429=0.5)
    first = statuses()
    set_faults(client, seed=5)

    assert statuses() == first
    assert set(first) == {422, 429}


# -- get_result and delivery ---------------------------------------------------------------


def test_get_result_500(client: TestClient) -> None:
    polling_url = submit(client)["polling_url"]
    set_faults(client, get_result_500=1)
    failed = client.get(polling_url, headers=AUTH)
    set_faults(client, get_result_500=0)

    assert failed.status_code == 500
    assert wait_for_final(client, polling_url)["status"] == "Ready"


@pytest.mark.timeout(30)
def test_a_slow_get_result(client: TestClient) -> None:
    polling_url = submit(client)["polling_url"]
    set_faults(client, get_result_slow_s=SLOW_S, get_result_slow_probability=1)

    started = time.monotonic()
    response = client.get(polling_url, headers=AUTH)

    assert time.monotonic() - started >= SLOW_S
    assert response.status_code == 200


def test_expired_tasks_read_as_not_found(client: TestClient) -> None:
    result = run_fill(client)
    set_faults(client, expire_tasks=1)

    answer = client.get(f"/v1/get_result?id={result['id']}", headers=AUTH).json()

    assert answer["status"] == "Task not found"
    assert task_ids(client) == []


def test_expire_by_admin_action(client: TestClient) -> None:
    result = run_fill(client)

    expired = client.post("/admin/expire", json={"task_id": result["id"]}, headers=ADMIN)
    again = client.post("/admin/expire", json={"task_id": result["id"]}, headers=ADMIN)

    assert expired.json() == {"expired": result["id"]}
    assert again.status_code == 404
    answer = client.get(f"/v1/get_result?id={result['id']}", headers=AUTH).json()
    assert answer["status"] == "Task not found"


def test_delivery_fail(client: TestClient) -> None:
    sample_url = run_fill(client)["result"]["sample"]
    set_faults(client, delivery_fail=1)
    failed = client.get(sample_url)
    set_faults(client, delivery_fail=0)

    assert failed.status_code == 500
    assert client.get(sample_url).status_code == 200


def test_delivery_truncate(client: TestClient) -> None:
    sample_url = run_fill(client)["result"]["sample"]
    whole = client.get(sample_url).content
    set_faults(client, delivery_truncate=1)

    cut = client.get(sample_url)

    assert int(cut.headers["content-length"]) == len(whole)
    assert cut.content == whole[: len(whole) // 2]


# -- webhooks ------------------------------------------------------------------------------


def test_a_dropped_webhook_is_never_sent(make_client) -> None:
    receiver = WebhookReceiver()
    client = hooked_client(make_client, receiver)
    set_faults(client, webhook_drop=1)
    run_fill(client, webhook_url=HOOK_URL)
    set_faults(client, webhook_drop=0)
    run_fill(client, webhook_url=NEXT_HOOK_URL)

    receiver.wait_for(1)

    assert [str(request.url) for request in receiver.requests] == [NEXT_HOOK_URL]


def test_a_duplicated_webhook_is_sent_twice(make_client) -> None:
    receiver = WebhookReceiver()
    client = hooked_client(make_client, receiver, faults=Faults(webhook_duplicate=1))
    submit(client, webhook_url=HOOK_URL, webhook_secret="s3cret")

    first, second = receiver.wait_for(2)

    assert first.content == second.content
    assert second.headers["x-webhook-secret"] == "s3cret"


@pytest.mark.timeout(30)
def test_a_delayed_webhook(make_client) -> None:
    receiver = WebhookReceiver()
    faults = Faults(webhook_delay_s=SLOW_S, webhook_delay_probability=1)
    client = hooked_client(make_client, receiver, faults=faults)
    result = run_fill(client, webhook_url=HOOK_URL)
    ready = time.monotonic()

    receiver.wait_for(1)

    assert time.monotonic() - ready >= SLOW_S / 2
    assert json.loads(receiver.requests[0].content)["task_id"] == result["id"]


def test_a_reordered_webhook_arrives_after_the_next_one(make_client) -> None:
    receiver = WebhookReceiver()
    client = hooked_client(make_client, receiver)
    set_faults(client, webhook_reorder=1)
    first = run_fill(client, webhook_url=HOOK_URL)
    set_faults(client, webhook_reorder=0)
    second = run_fill(client, webhook_url=NEXT_HOOK_URL)

    receiver.wait_for(2)

    assert [json.loads(request.content)["task_id"] for request in receiver.requests] == [
        second["id"],
        first["id"],
    ]
