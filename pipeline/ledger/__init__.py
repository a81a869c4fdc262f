"""The job ledger in Redis: jobs, batches, provider slots, the account, the outbox.

    keys       the key schema
    scripts    the Lua scripts (`lua/`), each behind a typed wrapper
    jobs       job records and their transitions (checked against `pipeline.states`)
    batches    batches: recording, counters, cancel, retry, budgets
    slots      each account's slot leases and the dispatcher that fills them
    account()  pause, cool-down and spend of one provider account
    outbox     work for the workers, queued atomically with the state changes
    triggers   jobs made by trigger rules: once per event, waiting for masks
    notifications  outgoing notifications: where a batch notifies, pending deliveries

`Ledger` puts them together over one client; create one per process.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import redis

from pipeline.accounts import DEFAULT_ACCOUNT, DEFAULT_SLOTS
from pipeline.ledger.account import Account, AccountState
from pipeline.ledger.batches import DEFAULT_PRIORITY, BatchStore, BatchSummary
from pipeline.ledger.connection import INTERACTIVE_RETRIES, REDIS_RETRIES, redis_client
from pipeline.ledger.jobs import JobStore
from pipeline.ledger.keys import KEY_PREFIX, Keys
from pipeline.ledger.notifications import NotificationStore
from pipeline.ledger.outbox import Outbox, OutboxEntry
from pipeline.ledger.scripts import (
    Callback,
    PoolLimits,
    Scripts,
    Transition,
    pools_of,
    script_context,
)
from pipeline.ledger.slots import Slots
from pipeline.ledger.triggers import TriggerStore
from pipeline.settings import Deadlines, Settings

__all__ = [
    "DEFAULT_PRIORITY",
    "INTERACTIVE_RETRIES",
    "AccountState",
    "BatchSummary",
    "Callback",
    "Ledger",
    "OutboxEntry",
    "PoolLimits",
    "Transition",
    "redis_client",
]


DEFAULT_DEADLINES = Deadlines()


class Ledger:
    """The ledger over one Redis client. Thread-safe."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        slots: int = DEFAULT_SLOTS,
        pools: Mapping[str, PoolLimits] | None = None,
        default_account: str | None = None,
        deadlines: Deadlines = DEFAULT_DEADLINES,
        clock: Callable[[], float] = time.time,
        prefix: str = KEY_PREFIX,
    ) -> None:
        """A ledger over `client` whose account pools are `pools` (by account name; the
        first is the default unless `default_account` says otherwise), or, without
        `pools`, one account named `default` of `slots` slots."""
        self.redis = client
        self.keys = Keys(prefix)
        pools = pools if pools is not None else {DEFAULT_ACCOUNT: PoolLimits(slots)}
        context = script_context(self.keys, pools, deadlines, clock, default_pool=default_account)
        self.scripts = Scripts(client, context)
        self.jobs = JobStore(client, self.keys, self.scripts)
        self.batches = BatchStore(client, self.keys, self.scripts, self.jobs, clock)
        self.slots = Slots(client, self.keys, self.scripts)
        self.outbox = Outbox(client, self.keys)
        self.triggers = TriggerStore(client, self.keys, self.scripts)
        self.notifications = NotificationStore(client, self.keys, self.scripts, clock)
        self._clock = clock

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        redis_retries: int = REDIS_RETRIES,
    ) -> Ledger:
        """The ledger at `settings.redis_url`, with a slot pool per configured account; its
        client retries `redis_retries` times (about 30 s by default: a Redis restart)."""
        return cls(
            redis_client(settings.redis_url, retries=redis_retries),
            pools=pools_of(settings.accounts),
            default_account=settings.accounts.default_name,
            deadlines=settings.deadlines,
            clock=clock,
        )

    @property
    def pools(self) -> Mapping[str, PoolLimits]:
        """Each configured account's pool limits, by name."""
        return self.scripts.context.pools

    def account(self, name: str | None = None) -> Account:
        """Pause, cool-down and spend of account `name` (None: the default account)."""
        name = name or self.scripts.context.default_pool
        return Account(self.redis, name, self.keys.pool(name), self._clock)

    def __repr__(self) -> str:
        return f"Ledger(prefix={self.keys.prefix!r})"

    def close(self) -> None:
        self.redis.close()
