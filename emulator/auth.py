"""API keys: where each flavour of the API carries them, and which keys are accepted."""

from __future__ import annotations

import secrets

from starlette.requests import Request

from emulator.errors import Forbidden, Unauthorized


def x_key(request: Request) -> str | None:
    """The key as BFL takes it: the `x-key` header."""
    return request.headers.get("x-key") or None


def bearer_token(request: Request) -> str | None:
    """The key as CometAPI takes it: `Authorization: Bearer <key>`."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


class KeyCheck:
    """Accepts the configured keys, or any non-empty key when none are configured."""

    def __init__(self, api_keys: tuple[str, ...]) -> None:
        self._api_keys = tuple(key.encode() for key in api_keys)

    def __repr__(self) -> str:
        return f"KeyCheck(<{len(self._api_keys)} keys>)"

    def authenticate(self, presented: str | None) -> str:
        """The account key; 401 when none was presented, 403 when it is not accepted."""
        if not presented:
            raise Unauthorized("Not authenticated: no API key")
        if self._api_keys and not self._accepts(presented.encode()):
            raise Forbidden("Invalid API key")
        return presented

    def _accepts(self, presented: bytes) -> bool:
        return any(secrets.compare_digest(presented, key) for key in self._api_keys)
