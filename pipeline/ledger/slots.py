"""The provider accounts' slots, and the dispatcher that keeps them busy.

Each account is a pool of its own slots, and a job takes slots only from its account's
pool; fairness between batches holds inside each pool. A slot is a lease in the pool's
Redis hash (job key -> attempt), shared by every worker on every machine. A job takes
one only once its request is ready, so that a slot coming free costs no more than the
POST:

1. the dispatcher hands queued jobs, in fair order, to submit tasks (`dispatched`, a
   `submit` entry in the outbox): one for each free slot, and once every slot is in
   use, as many again, prepared ahead of the slots to come free;
2. a submit task reads and checks its job's inputs and builds the request, then `take`s
   a slot: at once if one is free, else its job joins the line of waiting jobs and the
   task `wait`s (up to `MAX_WAIT_S`);
3. whichever script gives a slot back (a callback, a collect, a job ending) hands it to
   the oldest waiting job in the same step and wakes its task, then dispatches the next
   queued job to take its place in the line;
4. the task that holds the slot moves its job to `submitting` (only one can: that move
   claims the POST) and POSTs at once.

A dispatched job that holds a slot but whose POST has not begun within the dispatch
deadline (its task died) is put back in line by the reconcile sweep, which frees the
slot. A lease is given back by the script that moves its job out of the slot-holding
states, or by `release` once the provider says the task ended, so it cannot leak or be
given back twice. The dispatcher (`lua/common.lua`) runs inside every script that frees
a slot, ends a dispatched job or puts a job in line.
"""

from __future__ import annotations

import redis

from pipeline.ledger.keys import Keys
from pipeline.ledger.scripts import Scripts
from pipeline.models import JobRef

# A job waits this long at most for a slot; then its task gives it back to its line.
# Far below the broker's visibility timeout, so its message is never delivered twice.
MAX_WAIT_S = 600.0


class Slots:
    """The accounts' slot leases."""

    def __init__(self, client: redis.Redis, keys: Keys, scripts: Scripts) -> None:
        self._redis = client
        self._keys = keys
        self._scripts = scripts

    def dispatch(self, account: str | None = None) -> int:
        """Hand free slots to waiting jobs and dispatch queued jobs to submit tasks, in
        `account`'s pool or every pool (nothing in a pool paused, cooling down or at its
        daily budget); return how many jobs were dispatched."""
        return self._scripts.dispatch(account)

    def take(self, ref: JobRef, attempt: int) -> str:
        """For a dispatched job whose request is ready: 'go' (it holds a slot now), 'wait'
        (in line for the next one: `wait`) or 'gone' (the job is no longer dispatched at
        `attempt`)."""
        wait_late_s = MAX_WAIT_S + self._scripts.context.dispatch_late_s
        return self._scripts.take_slot(ref, attempt, wait_late_s=wait_late_s)

    def wait(self, ref: JobRef, attempt: int, *, timeout_s: float) -> bool:
        """Block up to `timeout_s` until a slot is handed to `attempt` of the job; True
        once it has been."""
        go = self._keys.go(ref, attempt)
        return self._redis.blpop([go], timeout=timeout_s) is not None

    def holds(self, ref: JobRef, attempt: int, account: str) -> bool:
        """Whether `attempt` of the job holds a slot of `account`'s pool."""
        leases = self._keys.pool(account).leases
        return self._redis.hget(leases, self._keys.job(ref)) == str(attempt)

    def release(self, ref: JobRef, attempt: int) -> bool:
        """Give back the slot `attempt` of the job holds and fill it; True only the one
        time it does."""
        return self._scripts.release_slot(ref, attempt)

    def leases(self, account: str | None = None) -> dict[JobRef, int]:
        """Every slot in use in `account`'s pool (None: the default account's): the job
        holding it and that job's attempt."""
        pool = self._keys.pool(account or self._scripts.context.default_pool)
        return {
            self._keys.ref(key): int(attempt)
            for key, attempt in self._redis.hgetall(pool.leases).items()
        }
