"""Withdrawn endpoints (`withdrawn`): answered 404 in both flavours, as the provider
answers for an endpoint it no longer offers, while the rest of the API keeps working."""

from collections.abc import Callable
from typing import Any

import pytest
from starlette.testclient import TestClient

from emulator.config import WITHDRAWABLE_ENDPOINTS
from tests.emulator.helpers import KEY, finetune_body, submit, wait_for_final

pytestmark = pytest.mark.timeout(60)

Auth = Callable[[str], dict[str, str]]
FLAVORS = [
    pytest.param("/v1", lambda key: {"x-key": key}, id="bfl"),
    pytest.param("/flux/v1", lambda key: {"authorization": f"Bearer {key}"}, id="cometapi"),
]
# Each withdrawable endpoint's method and a request that would otherwise succeed.
REQUESTS: dict[str, tuple[str, dict[str, Any]]] = {
    "finetune": ("POST", {"json": finetune_body()}),
    "finetune_details": ("GET", {"params": {"finetune_id": "any"}}),
    "my_finetunes": ("GET", {}),
    "delete_finetune": ("POST", {"json": {"finetune_id": "any"}}),
    "credits": ("GET", {}),
}


def call(
    client: TestClient, prefix: str, endpoint: str, headers: dict[str, str]
) -> tuple[int, Any]:
    method, extra = REQUESTS[endpoint]
    response = client.request(method, f"{prefix}/{endpoint}", headers=headers, **extra)
    return response.status_code, response.json()


def test_every_withdrawable_endpoint_has_a_request() -> None:
    assert set(REQUESTS) == set(WITHDRAWABLE_ENDPOINTS)


@pytest.mark.parametrize(("prefix", "auth"), FLAVORS)
@pytest.mark.parametrize("endpoint", WITHDRAWABLE_ENDPOINTS)
def test_a_withdrawn_endpoint_is_404(
    make_client: Callable[..., TestClient], prefix: str, auth: Auth, endpoint: str
) -> None:
    client = make_client(withdrawn=(endpoint,))

    assert call(client, prefix, endpoint, auth(KEY)) == (404, {"detail": "Not Found"})
    assert call(client, prefix, endpoint, {}) == (404, {"detail": "Not Found"})


@pytest.mark.parametrize(("prefix", "auth"), FLAVORS)
def test_the_rest_of_the_api_keeps_working(
    make_client: Callable[..., TestClient], prefix: str, auth: Auth
) -> None:
    client = make_client(withdrawn=("finetune", "credits"))

    task = submit(client, f"{prefix}/flux-pro-1.0-fill", headers=auth(KEY))

    assert wait_for_final(client, task["polling_url"], auth(KEY))["status"] == "Ready"
    assert call(client, prefix, "my_finetunes", auth(KEY)) == (200, {"finetunes": []})
    assert call(client, prefix, "delete_finetune", auth(KEY))[0] == 404  # an unknown finetune
    assert call(client, prefix, "finetune", auth(KEY))[0] == 404


@pytest.mark.parametrize(("prefix", "auth"), FLAVORS)
def test_nothing_is_withdrawn_by_default(client: TestClient, prefix: str, auth: Auth) -> None:
    assert call(client, prefix, "credits", auth(KEY)) == (200, {"credits": 1000.0})
    assert call(client, prefix, "finetune", auth(KEY))[0] == 200
