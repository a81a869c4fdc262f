"""Signed, expiring result URLs: `/delivery/<task_id>/<filename>?exp=<unix>&sig=<hex>`.

The signature is HMAC-SHA256 over the path and the expiry, so neither can be changed;
each `get_result` signs a fresh URL, valid `delivery_ttl_s` from then.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from urllib.parse import urlencode

from emulator.errors import Forbidden

DELIVERY_PREFIX = "/delivery"


class DeliverySigner:
    """Signs and verifies delivery URLs against the injected clock."""

    def __init__(self, key: str, *, ttl_s: float, clock: Callable[[], float]) -> None:
        self._key = key.encode()
        self._ttl_s = ttl_s
        self._clock = clock

    def __repr__(self) -> str:
        return f"DeliverySigner(ttl_s={self._ttl_s})"

    def url(self, base_url: str, task_id: str, filename: str) -> str:
        """A URL for `filename` of `task_id` under `base_url`, valid from now for the TTL."""
        path = delivery_path(task_id, filename)
        expires = int(self._clock() + self._ttl_s)
        query = urlencode({"exp": expires, "sig": self._signature(path, expires)})
        return f"{base_url}{path}?{query}"

    def verify(self, task_id: str, filename: str, exp: str | None, sig: str | None) -> None:
        """Raise `Forbidden` unless `exp` and `sig` are a valid, unexpired signature."""
        try:
            expires = int(exp or "")
        except ValueError:
            raise Forbidden("Signature does not match") from None
        expected = self._signature(delivery_path(task_id, filename), expires)
        if not hmac.compare_digest(expected.encode(), (sig or "").encode()):
            raise Forbidden("Signature does not match")
        if self._clock() > expires:
            raise Forbidden("Request has expired")

    def _signature(self, path: str, expires: int) -> str:
        message = f"{path}\n{expires}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()


def delivery_path(task_id: str, filename: str) -> str:
    return f"{DELIVERY_PREFIX}/{task_id}/{filename}"
