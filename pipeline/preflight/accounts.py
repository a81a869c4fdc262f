"""Preflight of a provider account: its key is accepted and it has credits.

One GET of `<base_url><prefix>/credits` (`/v1` for BFL, `/flux/v1` for CometAPI) with the
account's own auth header, made here rather than through `ProviderClient` so the check
has its own short timeout. The key is sent, never shown.
"""

from __future__ import annotations

import tomllib

import httpx

from pipeline.accounts import ProviderAccount
from pipeline.models import CREDITS_PER_USD
from pipeline.preflight.results import CheckResult, fail, ok, warn
from pipeline.provider import _PATH_PREFIX, _auth_headers, error_message

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
    name = f"account {account.name}"
    url = f"{account.base_url}{_PATH_PREFIX[account.flavor]}/credits"
    url_setting, key_setting = _settings_of(account.name, accounts_file)
    try:
        with httpx.Client(transport=transport, timeout=timeout_s, follow_redirects=False) as http:
            response = http.get(url, headers=_auth_headers(account.flavor, account.key))
    except (httpx.HTTPError, httpx.InvalidURL) as error:
        return fail(
            name,
            f"could not reach the provider at {url} ({type(error).__name__})",
            f"check {url_setting} and that this machine can reach it",
        )
    refused = _refusal(account, url, response, url_setting, key_setting)
    return refused or _balance(account, response)


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
    account: ProviderAccount,
    url: str,
    response: httpx.Response,
    url_setting: str,
    key_setting: str,
) -> CheckResult | None:
    """The failure an error status means, or None for a success."""
    name, status = f"account {account.name}", response.status_code
    if status in (401, 403):
        return fail(
            name,
            f"the provider refused the key of account {account.name} ({status})",
            f"put the account's API key in {key_setting}",
        )
    if status == 402:
        return fail(name, f"account {account.name} has no credits (402)", "top up its credits")
    if status == 404:
        return fail(
            name,
            f"{url} answered 404: not the provider's API",
            f"set {url_setting} to the API's base URL (e.g. https://api.us1.bfl.ai, "
            f"without /v1) and the flavor to match it (bfl or cometapi)",
        )
    if status >= 400:
        return fail(
            name,
            f"the provider answered {status} at {url}: {error_message(response)}",
            f"try again later; if it persists, check {url_setting}",
        )
    return None


def _balance(account: ProviderAccount, response: httpx.Response) -> CheckResult:
    name = f"account {account.name}"
    try:
        credits = response.json().get("credits")
    except (ValueError, AttributeError):
        credits = None
    if not isinstance(credits, int | float) or isinstance(credits, bool):
        return warn(
            name,
            f"key accepted at {account.base_url}, but the answer states no credit balance",
            "make sure the account has credits",
        )
    if credits <= 0:
        return fail(name, f"account {account.name} has no credits ({credits:g})", "top it up")
    return ok(
        name,
        f"key accepted; {credits:g} credits (${credits / CREDITS_PER_USD:,.2f}) "
        f"at {account.base_url} ({account.flavor})",
    )
