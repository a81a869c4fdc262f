"""`GET`/`PUT /admin/rendering`: the drift and result size of fills, changed at run time."""

import io

import pytest
from PIL import Image
from starlette.testclient import TestClient

from emulator.rendering import Rendering
from tests.emulator.helpers import (
    ADMIN_TOKEN,
    AUTH,
    HEIGHT,
    WIDTH,
    download,
    run_fill,
    submit,
    wait_for_final,
)

pytestmark = pytest.mark.timeout(60)

ADMIN = {"x-admin-token": ADMIN_TOKEN}


def size_of(data: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(data)).size


def test_get_shows_the_configured_rendering(make_client) -> None:
    client = make_client(drift=False, result_scale=0.5)

    answer = client.get("/admin/rendering", headers=ADMIN).json()

    assert answer == {"drift": False, "result_scale": 0.5}


def test_the_default_rendering_drifts_at_the_input_size(client: TestClient) -> None:
    assert client.get("/admin/rendering", headers=ADMIN).json() == Rendering().as_json()
    assert Rendering().as_json() == {"drift": True, "result_scale": 1.0}


@pytest.mark.parametrize("method", ["GET", "PUT"])
@pytest.mark.parametrize("headers", [{}, {"x-admin-token": "wrong"}])
def test_refused_without_the_token(
    client: TestClient, method: str, headers: dict[str, str]
) -> None:
    response = client.request(method, "/admin/rendering", json={"drift": False}, headers=headers)

    assert response.status_code == 403
    assert client.get("/admin/rendering", headers=ADMIN).json()["drift"] is True


def test_put_is_a_partial_update(client: TestClient) -> None:
    answer = client.put("/admin/rendering", json={"result_scale": 2}, headers=ADMIN).json()

    assert answer == {"drift": True, "result_scale": 2.0}
    assert client.get("/admin/rendering", headers=ADMIN).json() == answer


@pytest.mark.parametrize(
    "changes",
    [
        {"drift": "off", "result_scale": 5, "nonsense": 1},
        {"drift": 1, "result_scale": 0.1},
        {"result_scale": True},
        {"result_scale": "2"},
    ],
)
def test_put_lists_every_bad_field_and_changes_nothing(
    client: TestClient, changes: dict[str, object]
) -> None:
    response = client.put("/admin/rendering", json=changes, headers=ADMIN)

    assert response.status_code == 422
    assert {tuple(issue["loc"]) for issue in response.json()["detail"]} == {
        ("body", name) for name in changes
    }
    assert client.get("/admin/rendering", headers=ADMIN).json() == Rendering().as_json()


def test_a_change_applies_to_fills_submitted_after_it(make_client) -> None:
    # A task renders halfway through its latency (half a second of real time here, the
    # driven clock standing still), well after the change: it keeps its own setting.
    client = make_client(latency_base_s=1.0)
    before = submit(client)
    client.put("/admin/rendering", json={"result_scale": 0.5}, headers=ADMIN)
    after = run_fill(client)

    accepted_before = wait_for_final(client, before["polling_url"], AUTH)
    assert size_of(download(client, accepted_before)) == (WIDTH, HEIGHT)
    assert size_of(download(client, after)) == (WIDTH // 2, HEIGHT // 2)


def test_drift_can_be_switched_off_and_on(client: TestClient) -> None:
    drifted = download(client, run_fill(client))
    client.put("/admin/rendering", json={"drift": False}, headers=ADMIN)
    plain = download(client, run_fill(client))
    client.put("/admin/rendering", json={"drift": True}, headers=ADMIN)

    assert plain != drifted
    assert download(client, run_fill(client)) == drifted
