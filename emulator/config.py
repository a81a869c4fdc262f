"""The emulator's settings: one frozen object, read once from an `environ` mapping.

Every field `name` is read from `FILLPIPE_EMULATOR_<NAME>`, except `faults`, read
from `FILLPIPE_EMULATOR_FAULT_<NAME>` (`emulator.faults`); see the package docstring
for the full list. Secrets (accepted keys, the per-key accounts, the delivery signing
key, the admin token) never appear in the repr, nor in the errors for their variables.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, get_type_hints

from emulator.account_limits import AccountLimits, check_accounts, parse_accounts
from emulator.faults import Faults
from emulator.rendering import Rendering, result_scale_problem

ENV_PREFIX = "FILLPIPE_EMULATOR_"
WEBHOOK_SHAPES = ("bfl", "result")
# Endpoints that `withdrawn` can take away, as a provider drops one from its API.
WITHDRAWABLE_ENDPOINTS = (
    "finetune",
    "finetune_details",
    "my_finetunes",
    "delete_finetune",
    "credits",
)
_TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
_FALSE_WORDS = frozenset({"0", "false", "no", "off"})


def env_name(field_name: str) -> str:
    """The environment variable that sets `field_name`."""
    return f"{ENV_PREFIX}{field_name.upper()}"


def _new_signing_key() -> str:
    return secrets.token_hex(32)


@dataclass(frozen=True)
class EmulatorConfig:
    """How the emulated provider behaves. Durations are seconds, amounts are credits."""

    # Accepted API keys, with the keys of `accounts`; both empty accepts any non-empty key.
    api_keys: tuple[str, ...] = field(default=(), repr=False)
    # Keys with limits of their own; a limit they leave out is the default below.
    accounts: Mapping[str, AccountLimits] = field(default_factory=dict, repr=False)
    initial_credits: float = 1000.0
    max_active_tasks: int = 24
    latency_base_s: float = 0.5
    latency_per_mp_s: float = 0.5
    latency_jitter_s: float = 0.1
    delivery_ttl_s: float = 600.0
    task_ttl_s: float = 3600.0
    public_url: str | None = None
    delivery_signing_key: str = field(default_factory=_new_signing_key, repr=False)
    webhook_hmac: bool = False
    webhook_shape: str = "bfl"
    webhook_retries: int = 3
    webhook_retry_backoff_s: float = 0.5
    worker_threads: int = 2
    # Seeds the draws of latencies and of seeds for submits without one: a run repeats
    # them (None: fresh entropy).
    seed: int | None = None
    # Guards /admin/*; empty disables the admin routes.
    admin_token: str = field(default="", repr=False)
    # Whole words (any case) in a prompt that make the submit `Request Moderated`.
    moderation_words: tuple[str, ...] = ()
    # A word (any case) in a prompt that makes the finished task `Content Moderated`.
    content_moderation_word: str = ""
    # Endpoints answered 404, as a provider answers for one it no longer offers.
    withdrawn: tuple[str, ...] = ()
    # Re-encode whole results as the provider's VAE does: a smooth colour drift and a
    # slight blur over every pixel, kept ones included (`emulator.reencode`).
    drift: bool = True
    # Results come back this many times the input's size (MIN..MAX_RESULT_SCALE).
    result_scale: float = 1.0
    # Read from FILLPIPE_EMULATOR_FAULT_<NAME> (see `emulator.faults`).
    faults: Faults = field(default_factory=Faults)

    def __post_init__(self) -> None:
        for name in _NON_NEGATIVE:
            _require(getattr(self, name) >= 0, name, "must not be negative")
        for name in _POSITIVE:
            _require(getattr(self, name) > 0, name, "must be greater than zero")
        _require(
            self.webhook_shape in WEBHOOK_SHAPES,
            "webhook_shape",
            f"must be one of {', '.join(WEBHOOK_SHAPES)}",
        )
        _require(bool(self.delivery_signing_key), "delivery_signing_key", "must not be empty")
        scale_problem = result_scale_problem(self.result_scale)
        _require(scale_problem is None, "result_scale", str(scale_problem))
        self._check_withdrawn()
        try:
            check_accounts(self.accounts)
        except ValueError as error:
            raise ValueError(f"accounts ({env_name('accounts')}): {error}") from None
        # Frozen like the rest: a read-only copy of the mapping it was given.
        object.__setattr__(self, "accounts", MappingProxyType(dict(self.accounts)))

    def _check_withdrawn(self) -> None:
        unknown = sorted(set(self.withdrawn) - set(WITHDRAWABLE_ENDPOINTS))
        _require(
            not unknown,
            "withdrawn",
            f"names unknown endpoints {', '.join(unknown)}; "
            f"known: {', '.join(WITHDRAWABLE_ENDPOINTS)}",
        )

    @property
    def rendering(self) -> Rendering:
        """The rendering settings a fill starts with (`PUT /admin/rendering` changes them)."""
        return Rendering(drift=self.drift, result_scale=self.result_scale)

    def limits(self, key: str) -> tuple[int, float]:
        """`key`'s active-task limit and starting credits: its own, else the defaults."""
        own = self.accounts.get(key, AccountLimits())
        slots = own.slots if own.slots is not None else self.max_active_tasks
        credits = own.credits if own.credits is not None else self.initial_credits
        return slots, credits

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> EmulatorConfig:
        """Build from `FILLPIPE_EMULATOR_*` variables; unset ones keep their defaults.

        Raises `ValueError` naming the variable when a value is malformed.
        """
        hints = get_type_hints(cls)
        values: dict[str, Any] = {"faults": Faults.from_environ(environ)}
        for each in fields(cls):
            if each.name == "faults":
                continue
            raw = environ.get(env_name(each.name))
            if raw is not None:
                values[each.name] = _parse(
                    raw, hints[each.name], env_name(each.name), secret=not each.repr
                )
        return cls(**values)


_NON_NEGATIVE = (
    "initial_credits",
    "latency_base_s",
    "latency_per_mp_s",
    "latency_jitter_s",
    "webhook_retries",
    "webhook_retry_backoff_s",
)
_POSITIVE = ("max_active_tasks", "delivery_ttl_s", "task_ttl_s", "worker_threads")


def _require(condition: bool, name: str, problem: str) -> None:
    if not condition:
        raise ValueError(f"{name} ({env_name(name)}) {problem}")


def _parse(raw: str, hint: object, variable: str, *, secret: bool) -> object:
    """`raw` as a `hint`; the error names `variable`, and shows `raw` unless `secret`."""
    try:
        return _PARSERS[hint](raw.strip())
    except ValueError as error:
        shown = f": {error}" if secret else f", got {raw!r}"
        raise ValueError(f"{variable} must be {_EXPECTED[hint]}{shown}") from None


def _parse_bool(raw: str) -> bool:
    word = raw.lower()
    if word not in _TRUE_WORDS | _FALSE_WORDS:
        raise ValueError(word)
    return word in _TRUE_WORDS


def _parse_csv(raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def _parse_optional(raw: str) -> str | None:
    return raw or None


def _parse_optional_int(raw: str) -> int | None:
    return int(raw) if raw else None


_PARSERS: dict[object, Callable[[str], object]] = {
    float: float,
    int: int,
    bool: _parse_bool,
    str: str,
    str | None: _parse_optional,
    int | None: _parse_optional_int,
    tuple[str, ...]: _parse_csv,
    Mapping[str, AccountLimits]: parse_accounts,
}
_EXPECTED: dict[object, str] = {
    float: "a number",
    int: "an integer",
    bool: "true or false",
    str: "a string",
    str | None: "a string",
    int | None: "an integer or empty",
    tuple[str, ...]: "a comma-separated list",
    Mapping[str, AccountLimits]: "a JSON object of API keys and their limits",
}
