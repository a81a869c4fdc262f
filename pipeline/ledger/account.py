"""A provider account as the dispatcher sees it: paused, cooling down, in trouble,
and what it spent today."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import redis

from pipeline.ledger.keys import PoolKeys
from pipeline.ledger.scripts import utc_day

# A streak of failures to reach the provider is forgotten after this long without one.
TROUBLE_STREAK_TTL_S = 600


@dataclass(frozen=True)
class AccountState:
    """Slots in use, and why nothing is dispatched if so."""

    slots_in_use: int
    paused_reason: str | None
    cooldown_s: float
    name: str = ""
    spent_today_credits: float = 0.0

    def describe(self, capacity: int) -> str:
        text = f"slots {self.slots_in_use}/{capacity}"
        if self.paused_reason:
            text += f"; PAUSED: {self.paused_reason} (then run `fillpipe resume {self.name}`)"
        elif self.cooldown_s:
            text += f"; provider asked to wait {self.cooldown_s:.1f} s"
        return text


class Account:
    """Pause and cool-down of one provider account, shared by every process."""

    def __init__(
        self, client: redis.Redis, name: str, keys: PoolKeys, clock: Callable[[], float]
    ) -> None:
        self._redis = client
        self.name = name
        self._keys = keys
        self._clock = clock

    def __repr__(self) -> str:
        return f"Account({self.name!r})"

    def state(self) -> AccountState:
        """Slots in use, pause, cool-down, and the spend recorded today (UTC)."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.hlen(self._keys.leases)
        pipe.get(self._keys.paused)
        pipe.pttl(self._keys.cooldown)
        pipe.hget(self._keys.spend, utc_day(self._clock()))
        in_use, reason, cooldown_ms, spent = pipe.execute()
        return AccountState(
            int(in_use), reason, max(0.0, cooldown_ms / 1000), self.name, float(spent or 0)
        )

    def pause(self, reason: str) -> None:
        """Dispatch nothing until `resume` (e.g. out of credits)."""
        self._redis.set(self._keys.paused, reason)

    def resume(self) -> str | None:
        """Lift a pause; return why the account was paused (None if it was not)."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.get(self._keys.paused)
        pipe.delete(self._keys.paused)
        reason, _ = pipe.execute()
        return reason

    def paused_reason(self) -> str | None:
        return self._redis.get(self._keys.paused)

    def cool_down(self, seconds: float) -> None:
        """Dispatch nothing for `seconds` (the provider asked to wait: 429 Retry-After)."""
        self._redis.set(self._keys.cooldown, "1", px=_ms(seconds))

    def cooldown_left_s(self) -> float:
        """Seconds until dispatching resumes after a cool-down (0 when not cooling)."""
        return max(0.0, self._redis.pttl(self._keys.cooldown) / 1000)

    def claim_wakeup(self, seconds: float) -> bool:
        """True for the one caller that should schedule the dispatch ending a cool-down."""
        return bool(self._redis.set(self._keys.wakeup, "1", nx=True, px=_ms(seconds)))

    def provider_trouble(self) -> int:
        """Count one more failure in a row to reach the provider; return the streak."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.incr(self._keys.trouble)
        pipe.expire(self._keys.trouble, TROUBLE_STREAK_TTL_S)
        streak, _ = pipe.execute()
        return int(streak)

    def provider_fine(self) -> None:
        """The provider took a submit: end any streak of failures."""
        self._redis.delete(self._keys.trouble)


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))
