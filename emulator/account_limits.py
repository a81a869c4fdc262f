"""Per-key account limits: each key's own slots and starting credits.

`FILLPIPE_EMULATOR_ACCOUNTS` holds a JSON object mapping an API key to its limits,
`{"key-a": {"slots": 3, "credits": 100}, "key-b": {"slots": 5}}`; a field left out (or
null) falls back to `MAX_ACTIVE_TASKS` / `INITIAL_CREDITS`. The keys are secrets, so
errors name an account by its position in the object, never by its key.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, fields
from typing import Any

# What the JSON object of one account may hold.
LIMIT_FIELDS = ("slots", "credits")


@dataclass(frozen=True)
class AccountLimits:
    """One key's limits; None falls back to the config-wide default."""

    # Active (Pending) tasks the key may have at once, else 429.
    slots: int | None = None
    # The key's starting balance, in credits.
    credits: float | None = None

    def __post_init__(self) -> None:
        slots, credits = self.slots, self.credits
        if slots is not None and (not _is_integer(slots) or slots < 1):
            raise ValueError("slots must be an integer of at least 1")
        if credits is not None and (not _is_number(credits) or credits < 0):
            raise ValueError("credits must be a number of at least 0")


def parse_accounts(raw: str) -> dict[str, AccountLimits]:
    """The accounts in `raw` (empty: none); `ValueError` says what is wrong, key-free."""
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw, parse_constant=_reject_constant)
    except ValueError as error:
        raise ValueError(f"not valid JSON ({_decode_problem(error)})") from None
    if not isinstance(data, dict):
        raise ValueError("its top level is not a JSON object")
    return {key: _account(position, key, value) for position, (key, value) in _numbered(data)}


def check_accounts(accounts: dict[str, AccountLimits] | Any) -> None:
    """`ValueError` unless `accounts` maps non-empty keys to `AccountLimits`."""
    for position, (key, limits) in _numbered(accounts):
        if not isinstance(key, str) or not key.strip():
            raise ValueError(f"account #{position}: the API key must be a non-empty string")
        if not isinstance(limits, AccountLimits):
            raise ValueError(f"account #{position}: limits must be an AccountLimits")


def _account(position: int, key: str, value: object) -> AccountLimits:
    where = f"account #{position}"
    if not key.strip():
        raise ValueError(f"{where}: the API key must not be empty")
    if not isinstance(value, dict):
        raise ValueError(f"{where}: its limits must be a JSON object")
    unknown = sorted(set(value) - set(LIMIT_FIELDS))
    if unknown:
        known = ", ".join(each.name for each in fields(AccountLimits))
        raise ValueError(f"{where}: unknown field(s) {', '.join(unknown)} (known: {known})")
    try:
        return AccountLimits(**value)
    except ValueError as error:
        raise ValueError(f"{where}: {error}") from None


def _numbered(accounts: Any) -> list[tuple[int, tuple[Any, Any]]]:
    """The accounts' (key, limits) pairs, numbered from 1 in their order."""
    return list(enumerate(dict(accounts).items(), start=1))


def _decode_problem(error: ValueError) -> str:
    """Where the JSON went wrong; never the document itself, which holds keys."""
    if isinstance(error, json.JSONDecodeError):
        return f"{error.msg} at line {error.lineno} column {error.colno}"
    return "NaN and Infinity are not JSON"


def _reject_constant(name: str) -> None:
    raise ValueError("NaN and Infinity are not JSON")


def _is_integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value)
