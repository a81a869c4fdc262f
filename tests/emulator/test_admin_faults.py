"""`GET`/`PUT /admin/faults`: auth, validation, partial updates, effect at run time."""

import pytest
from starlette.testclient import TestClient

from emulator.faults import FIELD_NAMES, Faults
from tests.emulator.helpers import ADMIN_TOKEN, AUTH, FILL, fill_body

ADMIN = {"x-admin-token": ADMIN_TOKEN}


def test_get_shows_every_fault(make_client) -> None:
    client = make_client(faults=Faults(webhook_drop=0.5, seed=9))

    answer = client.get("/admin/faults", headers=ADMIN).json()

    assert answer.keys() == set(FIELD_NAMES)
    assert (answer["webhook_drop"], answer["seed"], answer["submit_500"]) == (0.5, 9, 0.0)


@pytest.mark.parametrize("method", ["GET", "PUT"])
@pytest.mark.parametrize("headers", [{}, {"x-admin-token": "wrong"}])
def test_refused_without_the_token(
    client: TestClient, method: str, headers: dict[str, str]
) -> None:
    response = client.request(method, "/admin/faults", json={"submit_500": 1}, headers=headers)

    assert response.status_code == 403
    assert client.get("/admin/faults", headers=ADMIN).json()["submit_500"] == 0.0


def test_disabled_without_a_token(make_client) -> None:
    client = make_client(admin_token="")

    assert client.put("/admin/faults", json={}, headers={"x-admin-token": ""}).status_code == 404


def test_put_is_a_partial_update(make_client) -> None:
    client = make_client(faults=Faults(webhook_drop=0.5))

    answer = client.put("/admin/faults", json={"submit_429": 0.25}, headers=ADMIN).json()

    assert (answer["webhook_drop"], answer["submit_429"]) == (0.5, 0.25)
    assert client.get("/admin/faults", headers=ADMIN).json() == answer


def test_put_lists_every_bad_field_and_changes_nothing(client: TestClient) -> None:
    changes = {"webhook_drop": 2, "get_result_slow_s": -1, "seed": "x", "nonsense": 1}

    response = client.put("/admin/faults", json=changes, headers=ADMIN)

    assert response.status_code == 422
    assert {tuple(issue["loc"]) for issue in response.json()["detail"]} == {
        ("body", name) for name in changes
    }
    assert client.get("/admin/faults", headers=ADMIN).json() == Faults().as_json()


@pytest.mark.parametrize("body", [b"[1]", b"not json"])
def test_put_needs_a_json_object(client: TestClient, body: bytes) -> None:
    response = client.put("/admin/faults", content=body, headers=ADMIN)

    assert response.status_code in (400, 422)


def test_a_change_takes_effect_at_once(client: TestClient) -> None:
    def submit_status() -> int:
        return client.post(FILL, json=fill_body(), headers=AUTH).status_code

    before = submit_status()
    client.put("/admin/faults", json={"submit_500": 1}, headers=ADMIN)
    during = submit_status()
    client.put("/admin/faults", json={"submit_500": 0}, headers=ADMIN)

    assert (before, during, submit_status()) == (200, 500, 200)
