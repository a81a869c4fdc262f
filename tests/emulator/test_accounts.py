"""Credits (402) and the active-task limit (429)."""

import pytest
from starlette.testclient import TestClient

from tests.emulator.helpers import AUTH, FILL, OTHER_AUTH, fill_body, run_fill, submit


def test_credits_go_down_by_the_cost(client: TestClient) -> None:
    cost = submit(client)["cost"]

    assert client.get("/v1/credits", headers=AUTH).json() == {"credits": 1000 - cost}
    assert client.get("/v1/credits", headers=OTHER_AUTH).json() == {"credits": 1000}


def test_402_once_the_credits_would_go_negative(make_client) -> None:
    client = make_client(initial_credits=0.05)  # a 64 x 48 fill costs 0.02
    run_fill(client)
    run_fill(client)

    response = client.post(FILL, json=fill_body(), headers=AUTH)

    assert response.status_code == 402
    assert "credits" in response.json()["detail"].lower()
    assert client.get("/v1/credits", headers=AUTH).json() == {"credits": 0.01}
    assert client.post(FILL, json=fill_body(), headers=OTHER_AUTH).status_code == 200


def test_a_refused_submit_is_not_charged(client: TestClient) -> None:
    client.post(FILL, json=fill_body(steps=1), headers=AUTH)

    assert client.get("/v1/credits", headers=AUTH).json() == {"credits": 1000}


@pytest.mark.timeout(30)
def test_429_at_the_active_task_limit(make_client) -> None:
    client = make_client(max_active_tasks=2, latency_base_s=60)
    submit(client)
    submit(client)

    response = client.post(FILL, json=fill_body(), headers=AUTH)

    assert response.status_code == 429
    assert response.headers["retry-after"] == "1"
    assert "active tasks" in response.json()["detail"]
    assert client.post(FILL, json=fill_body(), headers=OTHER_AUTH).status_code == 200


def test_finished_tasks_free_their_slot(make_client) -> None:
    client = make_client(max_active_tasks=1)

    for _ in range(3):
        assert run_fill(client)["status"] == "Ready"
