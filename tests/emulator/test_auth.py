from collections.abc import Callable

import pytest
from starlette.testclient import TestClient

from tests.emulator.helpers import KEY

Auth = Callable[[str], dict[str, str]]
FLAVORS = [
    ("/v1", lambda key: {"x-key": key}),
    ("/flux/v1", lambda key: {"authorization": f"Bearer {key}"}),
]


@pytest.mark.parametrize(("prefix", "auth"), FLAVORS)
def test_a_missing_key_is_401(client: TestClient, prefix: str, auth: Auth) -> None:
    response = client.get(f"{prefix}/credits")

    assert response.status_code == 401
    assert isinstance(response.json()["detail"], str)


@pytest.mark.parametrize(("prefix", "auth"), FLAVORS)
def test_a_wrong_key_is_403(client: TestClient, prefix: str, auth: Auth) -> None:
    response = client.get(f"{prefix}/credits", headers=auth("not-a-key"))

    assert response.status_code == 403
    assert response.json() == {"detail": "Invalid API key"}


@pytest.mark.parametrize(("prefix", "auth"), FLAVORS)
def test_a_known_key_is_accepted(client: TestClient, prefix: str, auth: Auth) -> None:
    response = client.get(f"{prefix}/credits", headers=auth(KEY))

    assert response.status_code == 200
    assert response.json() == {"credits": 1000.0}


def test_auth_is_checked_before_the_body(client: TestClient) -> None:
    assert client.post("/v1/flux-pro-1.0-fill", content=b"not json").status_code == 401


@pytest.mark.parametrize("header", ["Token key-a", "Bearer ", "key-a"])
def test_cometapi_wants_a_bearer_token(client: TestClient, header: str) -> None:
    response = client.get("/flux/v1/credits", headers={"authorization": header})

    assert response.status_code == 401


def test_each_flavour_reads_only_its_own_header(client: TestClient) -> None:
    assert client.get("/v1/credits", headers={"authorization": f"Bearer {KEY}"}).status_code == 401
    assert client.get("/flux/v1/credits", headers={"x-key": KEY}).status_code == 401


def test_without_configured_keys_any_key_is_accepted(make_client) -> None:
    client = make_client(api_keys=())

    assert client.get("/v1/credits", headers={"x-key": "anything"}).status_code == 200
    assert client.get("/v1/credits", headers={"x-key": ""}).status_code == 401


def test_health_needs_no_key(client: TestClient) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_unknown_paths_answer_json(client: TestClient) -> None:
    response = client.get("/v1/no-such-endpoint", headers={"x-key": KEY})

    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}
