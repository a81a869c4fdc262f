"""The job ledger in Redis: jobs, batches, provider slots, the account, the outbox.

    keys       the key schema
    scripts    the Lua scripts (`lua/`), each behind a typed wrapper
    jobs       job records and their transitions (checked against `pipeline.states`)
    batches    batches: recording, counters, cancel, retry, budgets
    slots      the account's slot leases and the dispatcher that fills them
    account    pause and cool-down of the provider account
    outbox     work for the workers, queued atomically with the state changes
    triggers   jobs made by trigger rules: once per event, waiting for masks

`Ledger` puts them together over one client; create one per process.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import redis

from pipeline.ledger.account import Account, AccountState
from pipeline.ledger.batches import DEFAULT_PRIORITY, BatchStore, BatchSummary
from pipeline.ledger.connection import redis_client
from pipeline.ledger.jobs import JobStore
from pipeline.ledger.keys import KEY_PREFIX, Keys
from pipeline.ledger.outbox import Outbox, OutboxEntry
from pipeline.ledger.scripts import Callback, Scripts, Transition, script_context
from pipeline.ledger.slots import Slots
from pipeline.ledger.triggers import TriggerStore
from pipeline.settings import Deadlines, Settings

__all__ = [
    "DEFAULT_PRIORITY",
    "AccountState",
    "BatchSummary",
    "Callback",
    "Ledger",
    "OutboxEntry",
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
        slots: int,
        deadlines: Deadlines = DEFAULT_DEADLINES,
        clock: Callable[[], float] = time.time,
        prefix: str = KEY_PREFIX,
    ) -> None:
        self.redis = client
        self.keys = Keys(prefix)
        self.scripts = Scripts(client, script_context(self.keys, slots, deadlines, clock))
        self.jobs = JobStore(client, self.keys, self.scripts)
        self.batches = BatchStore(client, self.keys, self.scripts, self.jobs, clock)
        self.slots = Slots(client, self.keys, self.scripts)
        self.account = Account(client, self.keys)
        self.outbox = Outbox(client, self.keys)
        self.triggers = TriggerStore(client, self.keys, self.scripts)

    @classmethod
    def from_settings(cls, settings: Settings, *, clock: Callable[[], float] = time.time) -> Ledger:
        """The ledger at `settings.redis_url`, dispatching to `settings.provider_slots`."""
        return cls(
            redis_client(settings.redis_url),
            slots=settings.provider_slots,
            deadlines=settings.deadlines,
            clock=clock,
        )

    def __repr__(self) -> str:
        return f"Ledger(prefix={self.keys.prefix!r})"

    def close(self) -> None:
        self.redis.close()
