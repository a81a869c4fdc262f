"""Moderation: `Request Moderated` at submit, `Content Moderated` after processing."""

import json
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from emulator.moderation import Moderation
from tests.emulator.helpers import (
    ADMIN_TOKEN,
    AUTH,
    KEY,
    WebhookReceiver,
    run_fill,
    submit,
    wait_for_final,
)

ADMIN = {"x-admin-token": ADMIN_TOKEN}
HOOK_URL = "https://hooks.example/v1/callbacks/bfl/token-123"
WORDS = ("gore", "blood bath")


def moderated_client(make_client, receiver: WebhookReceiver) -> TestClient:
    return make_client(
        webhook_transport=httpx.MockTransport(receiver),
        moderation_words=WORDS,
        content_moderation_word="forbidden",
    )


def account(client: TestClient) -> dict[str, Any]:
    return client.get("/admin/stats", headers=ADMIN).json()["accounts"][KEY]


@pytest.mark.parametrize(
    ("prompt", "moderated"),
    [
        ("some GORE here", True),
        ("a blood bath.", True),
        ("gore-tex jacket", True),
        ("a gorewood forest", False),
        ("blood and a bath", False),
        ("", False),
    ],
)
def test_words_match_whole_and_in_any_case(prompt: str, moderated: bool) -> None:
    assert bool(Moderation(WORDS, "").request_reasons(prompt)) is moderated


def test_no_words_moderate_nothing() -> None:
    moderation = Moderation((), "")

    assert moderation.request_reasons("gore") == moderation.content_reasons("gore") == []


def test_a_request_moderated_submit(make_client) -> None:
    receiver = WebhookReceiver()
    client = moderated_client(make_client, receiver)

    submitted = submit(client, prompt="Gore everywhere", webhook_url=HOOK_URL)
    result = wait_for_final(client, submitted["polling_url"])
    [request] = receiver.wait_for(1)

    assert submitted["cost"] == 0
    assert result["status"] == "Request Moderated"
    assert result["result"] is None
    assert result["details"]["Moderation Reasons"]
    assert json.loads(request.content)["status"] == "Request Moderated"
    assert json.loads(request.content)["task_id"] == submitted["id"]
    assert client.get("/v1/credits", headers=AUTH).json() == {"credits": 1000.0}


def test_a_content_moderated_task(make_client) -> None:
    receiver = WebhookReceiver()
    client = moderated_client(make_client, receiver)

    submitted = submit(client, prompt="something FORBIDDEN", webhook_url=HOOK_URL)
    result = wait_for_final(client, submitted["polling_url"])
    [request] = receiver.wait_for(1)

    assert submitted["cost"] > 0
    assert result["status"] == "Content Moderated"
    assert result["result"] is None
    assert result["details"]["Moderation Reasons"]
    assert json.loads(request.content)["status"] == "Content Moderated"
    assert account(client)["charged_credits"] == 0
    assert account(client)["active_tasks"] == 0
    assert client.get("/v1/credits", headers=AUTH).json() == {"credits": 1000.0}


def test_other_prompts_are_not_moderated(make_client) -> None:
    client = moderated_client(make_client, WebhookReceiver())

    assert run_fill(client, prompt="a red sofa")["status"] == "Ready"
