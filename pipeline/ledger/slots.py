"""The provider account's slots: leases held by jobs, and the dispatcher that fills them.

A slot is a lease in one Redis hash (job key -> attempt), shared by every worker on
every machine. The dispatcher (`lua/common.lua`) leases free slots to the next queued
jobs in fair order and queues their submits; it runs inside every script that frees a
slot or puts a job in line, so a freed slot is refilled in the same round trip. The
lease is given back by the script that moves the job out of the slot-holding states, or
by `release` once the provider says the task ended, so it cannot leak or be given back
twice.
"""

from __future__ import annotations

import redis

from pipeline.ledger.keys import Keys
from pipeline.ledger.scripts import Scripts
from pipeline.models import JobRef


class Slots:
    """The account's slot leases."""

    def __init__(self, client: redis.Redis, keys: Keys, scripts: Scripts) -> None:
        self._redis = client
        self._keys = keys
        self._scripts = scripts

    @property
    def capacity(self) -> int:
        return self._scripts.context.slots

    def dispatch(self) -> int:
        """Lease every free slot to the next queued job in fair order (unless the account
        is paused or cooling down) and queue its submit; return how many."""
        return self._scripts.dispatch()

    def release(self, ref: JobRef, attempt: int) -> bool:
        """Give back the slot `attempt` of the job holds and fill it; True only the one
        time it does."""
        return self._scripts.release_slot(ref, attempt)

    def leases(self) -> dict[JobRef, int]:
        """Every slot in use: the job holding it and that job's attempt."""
        return {
            self._keys.ref(key): int(attempt)
            for key, attempt in self._redis.hgetall(self._keys.leases).items()
        }

    def in_use(self) -> int:
        return int(self._redis.hlen(self._keys.leases))
