"""Injected faults: what can go wrong with the provider, switchable at run time.

`Faults` is the setting (read at start from `FILLPIPE_EMULATOR_FAULT_<NAME>`, changed
through `PUT /admin/faults`); `FaultInjector` holds the current setting and one random
generator per fault kind, and answers one small question per fault (`drop_webhook()`…).
Each kind draws from its own generator, seeded from `seed` and the kind's name, so a
fixed seed gives the same sequence of decisions for each kind whatever the others do.
A probability of 0 never draws (and never fires); 1 always fires.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from emulator.errors import InvalidRequest, Issue

FAULT_ENV_PREFIX = "FILLPIPE_EMULATOR_FAULT_"
# No injected delay may exceed an hour: longer ones are typos, not faults.
MAX_FAULT_DELAY_S = 3600.0
DELAYS = ("webhook_delay_s", "get_result_slow_s")


@dataclass(frozen=True)
class Faults:
    """Fault probabilities (0..1), delays in seconds, and the seed of the draws."""

    webhook_drop: float = 0.0
    webhook_duplicate: float = 0.0
    webhook_delay_s: float = 0.0
    webhook_delay_probability: float = 0.0
    webhook_reorder: float = 0.0
    submit_429: float = 0.0
    submit_500: float = 0.0
    submit_500_after_create: float = 0.0
    get_result_500: float = 0.0
    get_result_slow_s: float = 0.0
    get_result_slow_probability: float = 0.0
    delivery_fail: float = 0.0
    delivery_truncate: float = 0.0
    expire_tasks: float = 0.0
    # None draws from fresh entropy; an integer makes every run repeat the same draws.
    seed: int | None = None

    def __post_init__(self) -> None:
        problems = [issue.msg for issue in _issues(asdict(self))]
        if problems:
            raise ValueError("; ".join(problems))

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> Faults:
        """Build from `FILLPIPE_EMULATOR_FAULT_*`; `ValueError` names a malformed variable."""
        values: dict[str, Any] = {}
        for name in FIELD_NAMES:
            raw = environ.get(fault_env_name(name))
            if raw is not None:
                values[name] = _parse_env(name, raw.strip())
        return cls(**values)

    def updated(self, changes: Mapping[str, Any]) -> Faults:
        """These faults with `changes` applied; `InvalidRequest` lists every bad field."""
        issues = [
            Issue(("body", name), "Unknown fault", "extra_forbidden")
            for name in changes
            if name not in FIELD_NAMES
        ]
        issues += _issues(changes)
        if issues:
            raise InvalidRequest(issues)
        return replace(self, **{name: _coerced(name, value) for name, value in changes.items()})

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


FIELD_NAMES = tuple(each.name for each in fields(Faults))


def fault_env_name(name: str) -> str:
    """The environment variable that sets fault `name`."""
    return f"{FAULT_ENV_PREFIX}{name.upper()}"


def _parse_env(name: str, raw: str) -> int | float | None:
    try:
        if name == "seed":
            return int(raw) if raw else None
        return float(raw)
    except ValueError:
        expected = "an integer" if name == "seed" else "a number"
        raise ValueError(f"{fault_env_name(name)} must be {expected}, got {raw!r}") from None


def _issues(values: Mapping[str, Any]) -> list[Issue]:
    issues = []
    for name, value in values.items():
        problem = _problem(name, value) if name in FIELD_NAMES else None
        if problem is not None:
            issues.append(Issue(("body", name), f"{name} {problem}", "value_error"))
    return issues


def _problem(name: str, value: object) -> str | None:
    if name == "seed":
        is_int = isinstance(value, int) and not isinstance(value, bool)
        return None if value is None or is_int else "must be an integer or null"
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return "must be a number"
    if name in DELAYS:
        return None if 0 <= value <= MAX_FAULT_DELAY_S else f"must be 0..{MAX_FAULT_DELAY_S:g}"
    return None if 0 <= value <= 1 else "must be a probability, 0..1"


def _coerced(name: str, value: Any) -> Any:
    return value if name == "seed" else float(value)


class FaultInjector:
    """The current faults and their draws; one tiny decision method per fault."""

    def __init__(self, faults: Faults) -> None:
        self._faults = faults
        self._rngs: dict[str, random.Random] = {}

    @property
    def faults(self) -> Faults:
        return self._faults

    def update(self, changes: Mapping[str, Any]) -> Faults:
        """Apply `changes` (validated); a `seed` among them restarts every kind's draws."""
        self._faults = self._faults.updated(changes)
        if "seed" in changes:
            self._rngs.clear()
        return self._faults

    # -- webhooks ----------------------------------------------------------------------

    def drop_webhook(self) -> bool:
        return self._hit("webhook_drop", self._faults.webhook_drop)

    def duplicate_webhook(self) -> bool:
        return self._hit("webhook_duplicate", self._faults.webhook_duplicate)

    def webhook_delay_s(self) -> float:
        """The extra wait before this webhook goes out: 0 or `webhook_delay_s`."""
        hit = self._hit("webhook_delay", self._faults.webhook_delay_probability)
        return self._faults.webhook_delay_s if hit else 0.0

    def reorder_webhook(self) -> bool:
        """Hold this webhook back until the next one has been sent."""
        return self._hit("webhook_reorder", self._faults.webhook_reorder)

    # -- submit, get_result, delivery --------------------------------------------------

    def refuse_submit(self) -> bool:
        """Answer the submit 429, creating nothing."""
        return self._hit("submit_429", self._faults.submit_429)

    def fail_submit(self) -> bool:
        """Answer the submit 500, creating nothing."""
        return self._hit("submit_500", self._faults.submit_500)

    def fail_after_create(self) -> bool:
        """Answer the submit 500 although the task was created and charged."""
        return self._hit("submit_500_after_create", self._faults.submit_500_after_create)

    def fail_get_result(self) -> bool:
        return self._hit("get_result_500", self._faults.get_result_500)

    def get_result_delay_s(self) -> float:
        """The extra wait before get_result answers: 0 or `get_result_slow_s`."""
        hit = self._hit("get_result_slow", self._faults.get_result_slow_probability)
        return self._faults.get_result_slow_s if hit else 0.0

    def expire_task(self) -> bool:
        """Forget the task get_result asks for, as if its TTL had passed."""
        return self._hit("expire_tasks", self._faults.expire_tasks)

    def fail_delivery(self) -> bool:
        return self._hit("delivery_fail", self._faults.delivery_fail)

    def truncate_delivery(self) -> bool:
        """Send half the result under the full Content-Length."""
        return self._hit("delivery_truncate", self._faults.delivery_truncate)

    def _hit(self, kind: str, probability: float) -> bool:
        if probability <= 0:
            return False
        return probability >= 1 or self._rng(kind).random() < probability

    def _rng(self, kind: str) -> random.Random:
        if kind not in self._rngs:
            seed = self._faults.seed
            self._rngs[kind] = random.Random(None if seed is None else f"{seed}/{kind}")
        return self._rngs[kind]
