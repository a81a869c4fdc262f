"""The admin API: per-key counters and the active-task high-water mark."""

import pytest
from starlette.testclient import TestClient

from tests.emulator.helpers import (
    ADMIN_TOKEN,
    KEY,
    OTHER_AUTH,
    run_fill,
    submit,
    wait_for_final,
)

ADMIN = {"x-admin-token": ADMIN_TOKEN}


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
