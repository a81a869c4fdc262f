"""Preflight of the callback side: the signing keys work, and with callbacks on the
receiver answers at the public URL the provider is given."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

import httpx

from pipeline.accounts import ProviderAccount
from pipeline.errors import VerificationError
from pipeline.models import JobRef
from pipeline.preflight.results import CheckResult, count, fail, ok, warn
from pipeline.settings import MIN_SIGNING_KEY_CHARS, Settings, redact_url
from pipeline.signing import SECRET_HEADER, CallbackClaim, CallbackSigner

# The receiver's health route (webhook_receiver/app.py): 200 while its Redis answers.
RECEIVER_HEALTH_PATH = "/healthz"
_PROBE_REF = JobRef("fillpipe-check", "probe")
_RECEIVER_FIX = (
    "start the receiver (fillpipe receiver), fix FILLPIPE_PUBLIC_URL, "
    "or set FILLPIPE_CALLBACKS=off to poll the provider instead"
)


def check_signing(settings: Settings) -> CheckResult:
    """A callback token and webhook secret made now verify (what the receiver does)."""
    keys = settings.signing_keys
    try:
        signer = CallbackSigner(keys, max_age_s=settings.callback_token_max_age_s)
        token = signer.token(_PROBE_REF, 1)
        secret = signer.webhook_secret(_PROBE_REF, 1)
        claim = signer.verify(token, {SECRET_HEADER: secret}, b"{}")
    except (ValueError, VerificationError) as error:
        return fail(
            "signing",
            f"a callback token signed now does not verify ({type(error).__name__})",
            f"set FILLPIPE_SIGNING_KEY to random strings of {MIN_SIGNING_KEY_CHARS}+ "
            f"characters, comma-separated, newest first",
        )
    if claim != CallbackClaim(_PROBE_REF, 1):
        return fail("signing", "a callback token verifies as another job's", "report this")
    hours = settings.callback_token_max_age_s / 3600
    return ok(
        "signing",
        f"{count(len(keys), 'key')} of {MIN_SIGNING_KEY_CHARS}+ characters; a callback "
        f"token signed now verifies (valid {hours:g} h)",
    )


def check_callbacks(
    settings: Settings,
    *,
    timeout_s: float,
    transport: httpx.BaseTransport | None = None,
) -> CheckResult:
    """Which way results arrive; with callbacks on, GET PUBLIC_URL/healthz answers 2xx."""
    if not settings.callbacks or settings.public_url is None:
        reason = "FILLPIPE_CALLBACKS=off" if settings.public_url else "no public URL"
        return ok("callbacks", f"polling ({reason}): fillpipe polls each task for its result")
    shown = redact_url(settings.public_url)
    url = f"{shown}{RECEIVER_HEALTH_PATH}"
    try:
        with httpx.Client(transport=transport, timeout=timeout_s, follow_redirects=False) as http:
            response = http.get(f"{settings.public_url}{RECEIVER_HEALTH_PATH}")
    except (httpx.HTTPError, httpx.InvalidURL) as error:
        return fail(
            "callbacks",
            f"callbacks via {shown}: {url} does not answer ({type(error).__name__}), "
            f"so the provider could not call back",
            _RECEIVER_FIX,
        )
    if not response.is_success:
        return fail(
            "callbacks",
            f"callbacks via {shown}: {url} answered {response.status_code}, "
            f"so the receiver would not take callbacks",
            _RECEIVER_FIX,
        )
    return _reachable(settings.public_url, settings.accounts, shown)


def _reachable(public_url: str, accounts: Iterable[ProviderAccount], shown: str) -> CheckResult:
    """Warn when a provider out on the internet is to call back to a private address."""
    remote = [account.name for account in accounts if not is_private_url(account.base_url)]
    if is_private_url(public_url) and remote:
        return warn(
            "callbacks",
            f"callbacks via {shown}: the receiver answers here, but the provider of "
            f"account {', '.join(remote)} cannot call back to a private address",
            "set FILLPIPE_PUBLIC_URL to the receiver's public https URL, "
            "or FILLPIPE_CALLBACKS=off to poll the provider instead",
        )
    return ok("callbacks", f"callbacks via {shown}: the receiver answered {RECEIVER_HEALTH_PATH}")


def is_private_url(url: str) -> bool:
    """Whether `url`'s host is loopback, private or link-local: a literal address or
    `localhost` (names are not resolved)."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_private or address.is_loopback or address.is_link_local
