"""Preflight of a provider account: its key is accepted and it has credits.

One balance request (`pipeline.finetunes.credits`) through the account's own client,
with the check's short timeout; each error the client raises becomes a failure that says
what to fix. The key is sent, never shown.
"""

from __future__ import annotations

import tomllib

import httpx

from pipeline.accounts import ProviderAccount
from pipeline.errors import (
    EndpointWithdrawn,
    FillpipeError,
    KeyRejected,
    OutOfCredits,
    ProviderRejected,
    ProviderUnavailable,
)
from pipeline.finetunes import credits
from pipeline.models import CREDITS_PER_USD
from pipeline.preflight.results import CheckResult, fail, ok
from pipeline.provider import ProviderClient

SINGLE_KEY_SETTING = "FILLPIPE_PROVIDER_KEY"
SINGLE_URL_SETTING = "FILLPIPE_PROVIDER_URL"


def check_account(
    account: ProviderAccount,
    *,
    timeout_s: float,
    accounts_file: str | None = None,
    transport: httpx.BaseTransport | None = None,
) -> CheckResult:
    """The provider accepts the account's key and states a balance above zero.

    `accounts_file` (FILLPIPE_ACCOUNTS_FILE, when the account comes from one) lets a
    fix name where the account's URL and key are set.
    """
    client = ProviderClient.for_account(account, transport=transport, timeout_s=timeout_s)
    try:
        balance = credits(client)
    except FillpipeError as error:
        return _refusal(account, error, *_settings_of(account.name, accounts_file))
    finally:
        client.close()
    return _balance(account, balance)


def _settings_of(account: str, accounts_file: str | None) -> tuple[str, str]:
    """Where the account's base URL and its key are set, as a fix names them."""
    if accounts_file is None:
        return SINGLE_URL_SETTING, SINGLE_KEY_SETTING
    table = f"[accounts.{account}] in {accounts_file}"
    key_source = _key_source(accounts_file, account, table)
    return f"base_url of {table} (or {SINGLE_URL_SETTING})", key_source


def _key_source(accounts_file: str, account: str, table: str) -> str:
    """`the environment variable BFL_KEY_A (key_env of …)`, or the key file it names."""
    try:
        with open(accounts_file, "rb") as file:
            fields = tomllib.load(file)["accounts"][account]
        if "key_env" in fields:
            return f"the environment variable {fields['key_env']} (key_env of {table})"
        return f"the file {fields['key_file']} (key_file of {table})"
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError):
        return f"the key_env or key_file of {table}"


def _refusal(
    account: ProviderAccount, error: FillpipeError, url_setting: str, key_setting: str
) -> CheckResult:
    """What the provider's refusal (or silence) means, and how to fix it."""
    name, url = f"account {account.name}", account.base_url
    if isinstance(error, KeyRejected):
        return fail(
            name,
            f"account {account.name}: {error}",
            f"put the account's API key in {key_setting}",
        )
    if isinstance(error, OutOfCredits):
        return fail(name, f"account {account.name} has no credits: {error}", "top up its credits")
    if isinstance(error, EndpointWithdrawn) or (
        isinstance(error, ProviderRejected) and error.status_code == 404
    ):
        return fail(
            name,
            f"{url} answered {error.status_code} to the balance request: not the provider's API",
            f"set {url_setting} to the API's base URL (e.g. https://api.us1.bfl.ai, "
            f"without /v1) and the flavor to match it (bfl or cometapi)",
        )
    if isinstance(error, ProviderUnavailable):
        return fail(
            name,
            f"could not get a balance from the provider at {url}: {error}",
            f"check {url_setting} and that this machine can reach it",
        )
    return fail(
        name,
        f"the provider at {url} refused the balance request: {error}",
        f"try again later; if it persists, check {url_setting}",
    )


def _balance(account: ProviderAccount, credits: float) -> CheckResult:
    name = f"account {account.name}"
    if credits <= 0:
        return fail(name, f"account {account.name} has no credits ({credits:g})", "top it up")
    return ok(
        name,
        f"key accepted; {credits:g} credits (${credits / CREDITS_PER_USD:,.2f}) "
        f"at {account.base_url} ({account.flavor})",
    )
