"""API keys: where each flavour of the API carries them, and which keys are accepted."""

from __future__ import annotations

import secrets
from collections.abc import Iterable

from starlette.requests import Request

from emulator.config import EmulatorConfig
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

    def __init__(self, api_keys: Iterable[str]) -> None:
        self._api_keys = tuple(key.encode() for key in api_keys)

    @classmethod
    def from_config(cls, config: EmulatorConfig) -> KeyCheck:
        """The keys of `api_keys` and of `accounts`: either list makes a key accepted."""
        return cls(dict.fromkeys((*config.api_keys, *config.accounts)))

    def __repr__(self) -> str:
        return f"KeyCheck(<{len(self._api_keys)} keys>)"

    def authenticate(self, presented: str | None) -> str:
        """The account key; 401 when none was presented, 403 when it is not accepted."""
        if not presented:
            raise Unauthorized("Not authenticated: no API key")
        if not self.accepts(presented):
            raise Forbidden("Invalid API key")
        return presented

    def accepts(self, key: str) -> bool:
        """Whether `key` opens an account: it is configured, or no keys are."""
        presented = key.encode()
        if not self._api_keys:
            return bool(presented)
        return any(secrets.compare_digest(presented, each) for each in self._api_keys)
