"""Several provider accounts in one emulator: each key's own slots, credits and
finetunes, in both flavours (BFL `/v1` with `x-key`, CometAPI `/flux/v1` with Bearer)."""

from collections.abc import Callable
from typing import Any

import pytest
from starlette.testclient import TestClient

from emulator.account_limits import AccountLimits
from emulator.app import create_app
from emulator.config import EmulatorConfig
from tests.emulator.helpers import (
    ADMIN_TOKEN,
    KEY,
    OTHER_KEY,
    Clock,
    fill_body,
    train_finetune,
)

pytestmark = pytest.mark.timeout(60)

Auth = Callable[[str], dict[str, str]]
FLAVORS = [
    pytest.param("/v1", lambda key: {"x-key": key}, id="bfl"),
    pytest.param("/flux/v1", lambda key: {"authorization": f"Bearer {key}"}, id="cometapi"),
]
ADMIN = {"x-admin-token": ADMIN_TOKEN}
# A 64 x 48 fill costs 0.02 credits.
FILL_COST = 0.02


def two_accounts(make_client: Callable[..., TestClient], **overrides: Any) -> TestClient:
    """An emulator whose only keys are KEY (3 slots) and OTHER_KEY (5 slots), both
    configured in `accounts`, with tasks that stay Pending unless told otherwise."""
    settings: dict[str, Any] = {
        "api_keys": (),
        "accounts": {KEY: AccountLimits(slots=3), OTHER_KEY: AccountLimits(slots=5)},
        "latency_base_s": 60.0,
        **overrides,
    }
    return make_client(**settings)


def post_fill(client: TestClient, prefix: str, headers: dict[str, str]) -> int:
    return client.post(f"{prefix}/flux-pro-1.0-fill", json=fill_body(), headers=headers).status_code


def credits(client: TestClient, prefix: str, headers: dict[str, str]) -> float:
    response = client.get(f"{prefix}/credits", headers=headers)
    assert response.status_code == 200, response.text
    balance: float = response.json()["credits"]
    return balance


def set_credits(client: TestClient, key: str, amount: float) -> dict[str, Any]:
    response = client.put(
        "/admin/accounts/credits", json={"key": key, "credits": amount}, headers=ADMIN
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


@pytest.mark.parametrize(("prefix", "auth"), FLAVORS)
def test_each_key_gets_429_exactly_past_its_own_slots(
    make_client: Callable[..., TestClient], prefix: str, auth: Auth
) -> None:
    client = two_accounts(make_client)

    first = [post_fill(client, prefix, auth(KEY)) for _ in range(4)]
    other = [post_fill(client, prefix, auth(OTHER_KEY)) for _ in range(6)]
    refused = client.post(f"{prefix}/flux-pro-1.0-fill", json=fill_body(), headers=auth(KEY))

    assert first == [200, 200, 200, 429]
    assert other == [200] * 5 + [429]
    assert refused.status_code == 429
    assert "at most 3" in refused.json()["detail"]
    accounts = client.get("/admin/stats", headers=ADMIN).json()["accounts"]
    assert {key: accounts[key]["active_tasks_high_water"] for key in (KEY, OTHER_KEY)} == {
        KEY: 3,
        OTHER_KEY: 5,
    }
    assert {key: accounts[key]["max_active_tasks"] for key in (KEY, OTHER_KEY)} == {
        KEY: 3,
        OTHER_KEY: 5,
    }


def test_a_key_left_out_of_its_slots_gets_the_default(
    make_client: Callable[..., TestClient],
) -> None:
    client = two_accounts(make_client, accounts={KEY: AccountLimits(credits=5)}, max_active_tasks=2)

    assert [post_fill(client, "/v1", {"x-key": KEY}) for _ in range(3)] == [200, 200, 429]


@pytest.mark.parametrize(("prefix", "auth"), FLAVORS)
def test_each_key_starts_with_its_own_credits(
    make_client: Callable[..., TestClient], prefix: str, auth: Auth
) -> None:
    client = two_accounts(
        make_client,
        accounts={KEY: AccountLimits(credits=0.05), OTHER_KEY: AccountLimits(slots=5)},
        initial_credits=7,
    )

    assert credits(client, prefix, auth(KEY)) == 0.05
    assert credits(client, prefix, auth(OTHER_KEY)) == 7


@pytest.mark.parametrize(("prefix", "auth"), FLAVORS)
def test_a_drained_key_gets_402_while_the_other_submits_and_a_top_up_restores_it(
    make_client: Callable[..., TestClient], prefix: str, auth: Auth
) -> None:
    client = two_accounts(make_client)

    assert set_credits(client, KEY, 0.01) == {"credits": 0.01}
    drained = client.post(f"{prefix}/flux-pro-1.0-fill", json=fill_body(), headers=auth(KEY))
    other = post_fill(client, prefix, auth(OTHER_KEY))
    set_credits(client, KEY, 12.5)
    topped_up = post_fill(client, prefix, auth(KEY))

    assert drained.status_code == 402
    assert "credits" in drained.json()["detail"].lower()
    assert other == 200
    assert topped_up == 200
    assert credits(client, prefix, auth(KEY)) == 12.5 - FILL_COST
    assert credits(client, prefix, auth(OTHER_KEY)) == 1000 - FILL_COST


def test_the_two_flavours_share_one_account_per_key(
    make_client: Callable[..., TestClient],
) -> None:
    client = two_accounts(make_client)

    statuses = [post_fill(client, "/v1", {"x-key": KEY}) for _ in range(2)]
    statuses += [
        post_fill(client, "/flux/v1", {"authorization": f"Bearer {KEY}"}) for _ in range(2)
    ]

    assert statuses == [200, 200, 200, 429]
    assert credits(client, "/flux/v1", {"authorization": f"Bearer {KEY}"}) == 1000 - 3 * FILL_COST


def test_accounts_from_the_environment_reach_the_api(clock: Clock) -> None:
    config = EmulatorConfig.from_environ(
        {
            "FILLPIPE_EMULATOR_ACCOUNTS": f'{{"{KEY}": {{"slots": 1, "credits": 2}}, '
            f'"{OTHER_KEY}": {{"slots": 2}}}}',
            "FILLPIPE_EMULATOR_LATENCY_BASE_S": "60",
            "FILLPIPE_EMULATOR_ADMIN_TOKEN": ADMIN_TOKEN,
        }
    )

    with TestClient(create_app(config, clock=clock)) as client:
        first = [post_fill(client, "/v1", {"x-key": KEY}) for _ in range(2)]
        other = [post_fill(client, "/v1", {"x-key": OTHER_KEY}) for _ in range(3)]
        balance = credits(client, "/v1", {"x-key": KEY})
        stranger = client.get("/v1/credits", headers={"x-key": "anything"}).status_code

    assert (first, other) == ([200, 429], [200, 200, 429])
    assert balance == 2 - FILL_COST
    assert stranger == 403


# -- which keys are accepted ---------------------------------------------------------


@pytest.mark.parametrize(("prefix", "auth"), FLAVORS)
def test_only_listed_keys_are_accepted(
    make_client: Callable[..., TestClient], prefix: str, auth: Auth
) -> None:
    client = make_client(api_keys=("listed-key",), accounts={KEY: AccountLimits(slots=3)})

    assert client.get(f"{prefix}/credits", headers=auth(KEY)).status_code == 200
    assert client.get(f"{prefix}/credits", headers=auth("listed-key")).status_code == 200
    assert client.get(f"{prefix}/credits", headers=auth(OTHER_KEY)).status_code == 403


def test_accounts_alone_restrict_the_keys(make_client: Callable[..., TestClient]) -> None:
    client = two_accounts(make_client)

    assert client.get("/v1/credits", headers={"x-key": "anything"}).status_code == 403


# -- the admin route -------------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, {"x-admin-token": "wrong"}])
def test_setting_credits_needs_the_admin_token(
    make_client: Callable[..., TestClient], headers: dict[str, str]
) -> None:
    client = two_accounts(make_client)

    response = client.put(
        "/admin/accounts/credits", json={"key": KEY, "credits": 5}, headers=headers
    )

    assert response.status_code == 403
    assert credits(client, "/v1", {"x-key": KEY}) == 1000


def test_setting_credits_for_an_unaccepted_key_is_404(
    make_client: Callable[..., TestClient],
) -> None:
    client = two_accounts(make_client)

    response = client.put(
        "/admin/accounts/credits", json={"key": "not-a-key", "credits": 5}, headers=ADMIN
    )

    assert response.status_code == 404
    assert "not-a-key" not in response.text


@pytest.mark.parametrize(
    ("body", "problems"),
    [
        ({"key": KEY, "credits": -1}, [(["body", "credits"], "greater_than_equal")]),
        ({"key": KEY, "credits": "5"}, [(["body", "credits"], "float_type")]),
        ({}, [(["body", "key"], "missing"), (["body", "credits"], "missing")]),
    ],
)
def test_a_bad_credits_body_is_a_422(
    make_client: Callable[..., TestClient], body: dict[str, Any], problems: list[Any]
) -> None:
    client = two_accounts(make_client)

    response = client.put("/admin/accounts/credits", json=body, headers=ADMIN)

    assert response.status_code == 422
    assert [(issue["loc"], issue["type"]) for issue in response.json()["detail"]] == problems


def test_without_configured_keys_any_key_can_be_given_credits(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(api_keys=())

    set_credits(client, "fresh-key", 3)

    assert credits(client, "/v1", {"x-key": "fresh-key"}) == 3


# -- finetunes --------------------------------------------------------------------------


@pytest.mark.parametrize(("prefix", "auth"), FLAVORS)
def test_finetunes_are_per_key(
    make_client: Callable[..., TestClient], prefix: str, auth: Auth
) -> None:
    client = two_accounts(make_client, latency_base_s=0.0)
    mine = train_finetune(client, auth(KEY), prefix=prefix, trigger_word="MINE")
    theirs = train_finetune(client, auth(OTHER_KEY), prefix=prefix)

    assert client.get(f"{prefix}/my_finetunes", headers=auth(KEY)).json() == {"finetunes": [mine]}
    assert client.get(f"{prefix}/my_finetunes", headers=auth(OTHER_KEY)).json() == {
        "finetunes": [theirs]
    }
    details = client.get(f"{prefix}/finetune_details?finetune_id={mine}", headers=auth(KEY))
    assert details.json()["finetune_details"]["trigger_word"] == "MINE"
    assert details_status(client, prefix, auth(OTHER_KEY), mine) == 404
    assert delete_status(client, prefix, auth(OTHER_KEY), mine) == 404
    assert delete_status(client, prefix, auth(KEY), mine) == 200
    assert client.get(f"{prefix}/my_finetunes", headers=auth(KEY)).json() == {"finetunes": []}
    assert details_status(client, prefix, auth(OTHER_KEY), theirs) == 200


def test_a_finetune_is_the_keys_in_both_flavours(make_client: Callable[..., TestClient]) -> None:
    client = two_accounts(make_client, latency_base_s=0.0)
    bearer = {"authorization": f"Bearer {KEY}"}
    finetune_id = train_finetune(client, {"x-key": KEY})

    assert client.get("/flux/v1/my_finetunes", headers=bearer).json() == {
        "finetunes": [finetune_id]
    }
    assert details_status(client, "/flux/v1", bearer, finetune_id) == 200


def details_status(
    client: TestClient, prefix: str, headers: dict[str, str], finetune_id: str
) -> int:
    url = f"{prefix}/finetune_details?finetune_id={finetune_id}"
    return client.get(url, headers=headers).status_code


def delete_status(
    client: TestClient, prefix: str, headers: dict[str, str], finetune_id: str
) -> int:
    body = {"finetune_id": finetune_id}
    return client.post(f"{prefix}/delete_finetune", json=body, headers=headers).status_code
