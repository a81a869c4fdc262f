"""The admin API: per-key counters, the active-task high-water mark and the task list."""

from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from tests.emulator.helpers import (
    ADMIN_TOKEN,
    AUTH,
    KEY,
    OTHER_AUTH,
    Clock,
    WebhookReceiver,
    run_fill,
    submit,
    wait_for_final,
    wait_until,
)

ADMIN = {"x-admin-token": ADMIN_TOKEN}
HOOK_URL = "https://hooks.example/v1/callbacks/bfl/token-123"


def test_disabled_without_a_token(make_client) -> None:
    client = make_client(admin_token="")

    assert client.get("/admin/stats", headers={"x-admin-token": ""}).status_code == 404


@pytest.mark.parametrize("headers", [{}, {"x-admin-token": "wrong"}])
def test_refused_without_the_token(client: TestClient, headers: dict[str, str]) -> None:
    assert client.get("/admin/stats", headers=headers).status_code == 403


@pytest.mark.timeout(30)
def test_stats_keep_the_high_water_mark(make_client) -> None:
    client = make_client(latency_base_s=2.0)
    polling_urls = [submit(client)["polling_url"] for _ in range(3)]
    during = client.get("/admin/stats", headers=ADMIN).json()["accounts"][KEY]
    for url in polling_urls:
        wait_for_final(client, url)

    after = client.get("/admin/stats", headers=ADMIN).json()["accounts"][KEY]

    assert (during["active_tasks"], during["active_tasks_high_water"]) == (3, 3)
    assert after == {
        "max_active_tasks": 24,
        "active_tasks": 0,
        "active_tasks_high_water": 3,
        "submitted_tasks": 3,
        "charged_credits": 0.06,
        "credits": 999.94,
    }


def test_stats_are_per_key(client: TestClient) -> None:
    run_fill(client)
    submit(client, headers=OTHER_AUTH)

    accounts = client.get("/admin/stats", headers=ADMIN).json()["accounts"]

    assert accounts.keys() == {"key-a", "key-b"}
    assert accounts["key-a"]["submitted_tasks"] == 1


class TimedReceiver(WebhookReceiver):
    """Answers `statuses` in turn, and moves the clock `step_s` on at each request, so
    each delivery attempt happens at a time of its own."""

    def __init__(self, clock: Clock, *statuses: int | None, step_s: float = 5.0) -> None:
        super().__init__(*statuses)
        self._clock = clock
        self._step_s = step_s

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self._clock.advance(self._step_s)
        return super().__call__(request)


def listed(client: TestClient, task_id: str) -> dict[str, Any]:
    [task] = [
        t for t in client.get("/admin/tasks", headers=ADMIN).json()["tasks"] if t["id"] == task_id
    ]
    return task


@pytest.mark.timeout(30)
def test_tasks_say_when_they_turned_ready_and_when_the_webhook_got_through(
    make_client, clock: Clock
) -> None:
    receiver = TimedReceiver(clock, 500, 200)
    client = make_client(webhook_transport=httpx.MockTransport(receiver))
    accepted_at = clock.now
    task_id = submit(client, webhook_url=HOOK_URL, webhook_secret="s3cret")["id"]
    receiver.wait_for(2)
    wait_until(lambda: listed(client, task_id)["webhook_at"] is not None)
    clock.advance(100.0)  # polled long after: the listing keeps the moment it turned Ready

    assert client.get(f"/v1/get_result?id={task_id}", headers=AUTH).json()["status"] == "Ready"
    task = listed(client, task_id)

    # No latency: Ready at once; the first attempt (at +5 s) was refused, the second
    # (at +10 s) answered 200.
    assert (task["status"], task["created_at"], task["finished_at"]) == (
        "Ready",
        accepted_at,
        accepted_at,
    )
    assert task["webhook_at"] == accepted_at + 10.0


@pytest.mark.timeout(30)
def test_a_duplicated_webhook_keeps_its_first_delivery_time(make_client, clock: Clock) -> None:
    receiver = TimedReceiver(clock, 200)
    client = make_client(webhook_transport=httpx.MockTransport(receiver))
    assert client.put("/admin/faults", json={"webhook_duplicate": 1}, headers=ADMIN).is_success
    accepted_at = clock.now
    task_id = submit(client, webhook_url=HOOK_URL)["id"]

    receiver.wait_for(2)

    wait_until(lambda: listed(client, task_id)["webhook_at"] is not None)
    assert listed(client, task_id)["webhook_at"] == accepted_at + 5.0


@pytest.mark.timeout(30)
def test_a_webhook_never_answered_2xx_or_never_asked_for_has_no_time(make_client) -> None:
    receiver = WebhookReceiver(500)
    client = make_client(webhook_transport=httpx.MockTransport(receiver), webhook_retries=1)
    refused = submit(client, webhook_url=HOOK_URL)["id"]
    receiver.wait_for(2)
    without = run_fill(client)["id"]

    assert listed(client, without)["status"] == "Ready"
    assert listed(client, refused)["webhook_at"] is None
    assert listed(client, without)["webhook_at"] is None
