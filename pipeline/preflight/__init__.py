"""Preflight: what `fillpipe check` verifies before the first real batch.

Each check reaches one part fillpipe depends on, with a short timeout, so a dead server
makes one failing `CheckResult` instead of a hang, and every check runs whatever the
others found:

    settings   they parse (else `Settings.from_environ` raised `ConfigError`)
    accounts   each provider account's key is accepted and it has credits  (accounts)
    s3         a tagged probe object is put, read back and deleted          (stores)
    redis      PING, and maxmemory-policy noeviction                       (stores)
    signing    a callback token signed now verifies                        (receiver)
    callbacks  polling, or the receiver answers at FILLPIPE_PUBLIC_URL      (receiver)

A result says what was checked and, when it is not ok, what is wrong and how to fix it.
Nothing shows a secret: keys are sent, never echoed; URLs are shown redacted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import httpx

from pipeline.preflight.accounts import check_account
from pipeline.preflight.receiver import RECEIVER_HEALTH_PATH, check_callbacks, check_signing
from pipeline.preflight.results import CheckResult, Status, fail, ok
from pipeline.preflight.stores import PROBE_PREFIX, check_redis, check_storage
from pipeline.settings import Settings, redact_url

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "PROBE_PREFIX",
    "RECEIVER_HEALTH_PATH",
    "CheckResult",
    "Status",
    "any_failed",
    "check_account",
    "check_callbacks",
    "check_redis",
    "check_settings",
    "check_signing",
    "check_storage",
    "run_checks",
]

DEFAULT_TIMEOUT_S = 3.0


def run_checks(
    settings: Settings,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    accounts_file: str | None = None,
    transport: httpx.BaseTransport | None = None,
) -> list[CheckResult]:
    """Every check, in order: settings, each account, s3, redis, signing, callbacks.

    `accounts_file` (FILLPIPE_ACCOUNTS_FILE) lets a failing account's fix name where its
    key is set; `transport` carries the HTTP checks (the provider, the receiver).
    """
    checks: list[tuple[str, Callable[[], CheckResult]]] = [
        ("settings", partial(check_settings, settings)),
        *(
            (
                f"account {account.name}",
                partial(
                    check_account,
                    account,
                    timeout_s=timeout_s,
                    accounts_file=accounts_file,
                    transport=transport,
                ),
            )
            for account in settings.accounts
        ),
        ("s3", partial(check_storage, settings, timeout_s=timeout_s)),
        ("redis", partial(check_redis, settings.redis_url, timeout_s=timeout_s)),
        ("signing", partial(check_signing, settings)),
        ("callbacks", partial(check_callbacks, settings, timeout_s=timeout_s, transport=transport)),
    ]
    return [_guarded(name, check) for name, check in checks]


def _guarded(name: str, check: Callable[[], CheckResult]) -> CheckResult:
    """The check's result; a check that crashes fails alone (named by the error's type:
    messages may hold hosts or secrets), so the others still run."""
    try:
        return check()
    except Exception as error:
        return fail(name, f"the check itself failed ({type(error).__name__})", "report this")


def check_settings(settings: Settings) -> CheckResult:
    """The settings parsed: what they point at."""
    accounts = ", ".join(
        f"{account.name} ({account.flavor}, {account.slots} slots)" for account in settings.accounts
    )
    noun = "account" if len(settings.accounts) == 1 else "accounts"
    store = redact_url(settings.s3_endpoint_url) if settings.s3_endpoint_url else "AWS S3"
    return ok(
        "settings",
        f"parsed: {noun} {accounts}; bucket {settings.bucket} on {store}; "
        f"Redis {redact_url(settings.redis_url)}",
    )


def any_failed(results: Sequence[CheckResult]) -> bool:
    """Whether any check failed (warnings do not count)."""
    return any(result.status is Status.FAIL for result in results)
