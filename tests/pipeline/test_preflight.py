"""Preflight checks against real servers: each part passes on the embedded stack, and each
broken part fails with what is wrong and how to fix it, without showing a secret."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator

import httpx
import pytest

from fillpipe.ports import free_ports
from fillpipe.servers import HttpService
from pipeline.accounts import Accounts, ProviderAccount
from pipeline.preflight import (
    Status,
    check_account,
    check_callbacks,
    check_signing,
    run_checks,
)
from pipeline.secret import Secret
from pipeline.settings import Settings
from tests.conftest import hermetic_environ

pytestmark = [pytest.mark.timeout(120), pytest.mark.integration]

TIMEOUT_S = 2.0
WRONG_KEY = "wrong-key-0123456789abcdef"


@pytest.fixture(scope="module")
def settings(stack) -> Settings:
    return Settings.from_environ(stack.env)


@pytest.fixture(scope="module")
def broke_emulator(tmp_path_factory) -> Iterator[str]:
    """An emulator whose accounts start with no credits; its URL (key `broke-key`)."""
    root = tmp_path_factory.mktemp("broke-emulator")

    def environment(url: str) -> dict[str, str]:
        return {
            **hermetic_environ(),
            "FILLPIPE_EMULATOR_INITIAL_CREDITS": "0",
            "FILLPIPE_EMULATOR_API_KEYS": "broke-key",
            "FILLPIPE_EMULATOR_PUBLIC_URL": url,
        }

    service = HttpService("emulator", root / "emulator.log", env=environment)
    service.start(timeout_s=60)
    try:
        yield service.url
    finally:
        service.stop()


def closed_url() -> str:
    """An http URL on a loopback port nothing listens on."""
    (port,) = free_ports(1)
    return f"http://127.0.0.1:{port}"


def test_every_check_passes_on_the_embedded_stack(settings, stack_rt):
    results = run_checks(settings, timeout_s=TIMEOUT_S)

    assert [result.name for result in results] == [
        "settings",
        "account default",
        "s3",
        "redis",
        "signing",
        "callbacks",
    ]
    assert all(result.status is Status.OK for result in results), results
    by_name = {result.name: result for result in results}
    assert "key accepted" in by_name["account default"].detail
    assert "credits" in by_name["account default"].detail
    assert "maxmemory-policy noeviction" in by_name["redis"].detail
    assert by_name["callbacks"].detail.startswith(f"callbacks via {settings.public_url}")
    leftovers = list(stack_rt.storage.list_pages(settings.bucket, "outputs/fillpipe-check/"))
    assert leftovers in ([], [[]]), "the probe object was not deleted"


def test_a_refused_key_names_its_setting_and_never_shows_the_key(settings):
    account = dataclasses.replace(settings.accounts.default, key=Secret(WRONG_KEY))

    result = check_account(account, timeout_s=TIMEOUT_S)

    assert result.status is Status.FAIL
    assert result.detail.startswith("account default: provider refused the API key (403)")
    assert "FILLPIPE_PROVIDER_KEY" in result.fix
    assert WRONG_KEY not in f"{result.detail} {result.fix} {result!r}"


def test_a_refused_key_from_an_accounts_file_names_its_key_env(settings, tmp_path):
    accounts_file = tmp_path / "accounts.toml"
    accounts_file.write_text('[accounts.brand-a]\nkey_env = "BFL_KEY_BRAND_A"\n')
    account = ProviderAccount("brand-a", settings.accounts.default.base_url, Secret(WRONG_KEY))

    result = check_account(account, timeout_s=TIMEOUT_S, accounts_file=str(accounts_file))

    assert result.status is Status.FAIL
    assert "account brand-a: provider refused the API key (403)" in result.detail
    assert "the environment variable BFL_KEY_BRAND_A" in result.fix
    assert str(accounts_file) in result.fix


def test_a_cometapi_account_is_checked_with_its_own_path_and_auth(settings):
    cometapi = dataclasses.replace(settings.accounts.default, flavor="cometapi")

    accepted = check_account(cometapi, timeout_s=TIMEOUT_S)
    refused = check_account(
        dataclasses.replace(cometapi, key=Secret(WRONG_KEY)), timeout_s=TIMEOUT_S
    )

    assert accepted.status is Status.OK
    assert "(cometapi)" in accepted.detail
    assert refused.status is Status.FAIL
    assert "(403)" in refused.detail


def test_an_account_without_credits_fails(broke_emulator):
    account = ProviderAccount("broke", broke_emulator, Secret("broke-key"))

    result = check_account(account, timeout_s=TIMEOUT_S)

    assert result.status is Status.FAIL
    assert result.detail == "account broke has no credits (0)"
    assert "top it up" in result.fix


def test_an_unreachable_provider_is_named_by_its_url():
    url = closed_url()
    account = ProviderAccount("default", url, Secret("any-key"))

    result = check_account(account, timeout_s=TIMEOUT_S)

    assert result.status is Status.FAIL
    assert f"could not get a balance from the provider at {url}" in result.detail
    assert "FILLPIPE_PROVIDER_URL" in result.fix


def test_a_url_that_is_not_the_providers_api_is_named(settings):
    assert settings.public_url is not None
    account = ProviderAccount("default", settings.public_url, Secret("any-key"))

    result = check_account(account, timeout_s=TIMEOUT_S)

    assert result.status is Status.FAIL
    assert result.detail == (
        f"{settings.public_url} answered 404 to the balance request: not the provider's API"
    )
    assert "FILLPIPE_PROVIDER_URL" in result.fix


def test_signing_reports_how_many_keys_and_never_a_key(settings):
    keys = ("a" * 40, "b" * 40)
    rotated = dataclasses.replace(settings, signing_keys=tuple(Secret(key) for key in keys))

    result = check_signing(rotated)

    assert result.status is Status.OK
    assert result.detail.startswith("2 keys of 32+ characters; a callback token signed now")
    assert not any(key in result.detail for key in keys)


def test_polling_needs_no_receiver(settings):
    polling = dataclasses.replace(settings, public_url=None, callbacks=False)

    result = check_callbacks(polling, timeout_s=TIMEOUT_S)

    assert result.status is Status.OK
    assert result.detail.startswith("polling (no public URL)")


def test_a_public_url_that_does_not_answer_fails_quickly(settings):
    url = closed_url()
    started = time.monotonic()

    result = check_callbacks(dataclasses.replace(settings, public_url=url), timeout_s=TIMEOUT_S)

    assert time.monotonic() - started < TIMEOUT_S + 1
    assert result.status is Status.FAIL
    assert result.detail.startswith(f"callbacks via {url}: {url}/healthz does not answer")
    assert "FILLPIPE_CALLBACKS=off" in result.fix


def test_a_receiver_that_is_not_healthy_fails(settings):
    unhealthy = httpx.MockTransport(lambda request: httpx.Response(503, json={"detail": "x"}))

    result = check_callbacks(settings, timeout_s=TIMEOUT_S, transport=unhealthy)

    assert result.status is Status.FAIL
    assert f"{settings.public_url}/healthz answered 503" in result.detail


def test_a_private_public_url_warns_when_the_provider_is_on_the_internet(settings):
    remote = ProviderAccount("real", "https://api.us1.bfl.ai", Secret("any-key"))
    real_provider = dataclasses.replace(settings, accounts=Accounts.single(remote))

    result = check_callbacks(real_provider, timeout_s=TIMEOUT_S)

    assert result.status is Status.WARN
    assert "cannot call back to a private address" in result.detail
    assert "FILLPIPE_PUBLIC_URL" in result.fix
