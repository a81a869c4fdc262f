"""Batches in the ledger: recording one, its counters, cancelling, retrying, budgets."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import redis

from pipeline.ledger.jobs import JobStore, new_job_fields
from pipeline.ledger.keys import Keys
from pipeline.ledger.scripts import Scripts
from pipeline.models import JobRef, JobSpec
from pipeline.states import JobState

DEFAULT_PRIORITY = 1
WRITE_CHUNK = 2000
STALE_RESULTS_CHUNK = 100


@dataclass(frozen=True)
class BatchSummary:
    """A batch's counters: jobs per state and credits spent so far."""

    batch_id: str
    total: int
    counts: dict[JobState, int]
    cost_credits: float
    created_at: float
    budget_credits: float | None = None
    cancelled: bool = False
    priority: int = DEFAULT_PRIORITY
    source: str = ""

    @property
    def finished(self) -> int:
        return sum(self.counts.get(state, 0) for state in JobState if state.is_terminal)

    @property
    def done(self) -> bool:
        return self.finished >= self.total


class BatchStore:
    """The ledger's batches."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        scripts: Scripts,
        jobs: JobStore,
        clock: Callable[[], float],
    ) -> None:
        self._redis = client
        self._keys = keys
        self._scripts = scripts
        self._jobs = jobs
        self._clock = clock

    def create(
        self,
        batch_id: str,
        specs: Iterable[JobSpec],
        *,
        budget_credits: float | None = None,
        priority: int = DEFAULT_PRIORITY,
        source: str = "",
        notify_url: str | None = None,
    ) -> int:
        """Record a batch and its jobs as `queued`, in pipelined chunks; return the count.

        Once every job is recorded the batch joins the line of each account its jobs
        run on, and free slots are leased to its first jobs at once. With `notify_url`
        the batch notifies that URL once all its jobs have ended (`pipeline.notify`).
        """
        now = self._clock()
        key = self._keys.batch(batch_id)
        pipe = self._redis.pipeline(transaction=False)
        pipe.hset(key, mapping=_new_batch_fields(now, priority, source, budget_credits))
        if notify_url is not None:
            pipe.hset(key, "notify", notify_url)
        pipe.zadd(self._keys.batches, {batch_id: now})
        total = 0
        accounts: set[str] = set()
        for spec in specs:
            if spec.ref.batch_id != batch_id:
                raise ValueError(f"job {spec.ref} does not belong to batch {batch_id}")
            pipe.hset(self._keys.job(spec.ref), mapping=new_job_fields(spec, now))
            pipe.rpush(self._keys.batch_jobs(batch_id), spec.ref.job_id)
            pipe.rpush(self._keys.batch_line(batch_id, spec.account), spec.ref.job_id)
            accounts.add(spec.account)
            total += 1
            if total % WRITE_CHUNK == 0:
                pipe.execute()
        pipe.hincrby(key, "total", total)
        pipe.hincrby(key, f"n:{JobState.QUEUED}", total)
        pipe.execute()
        self._scripts.join(batch_id, accounts)
        return total

    def summary(self, batch_id: str) -> BatchSummary | None:
        return summary_from(batch_id, self._redis.hgetall(self._keys.batch(batch_id)))

    def recent(self, limit: int, *, skip: int = 0) -> list[BatchSummary]:
        """The `limit` most recently created batches after the newest `skip`, newest first."""
        if limit < 1:
            return []
        batch_ids = self._redis.zrevrange(self._keys.batches, skip, skip + limit - 1)
        pipe = self._redis.pipeline(transaction=False)
        for batch_id in batch_ids:
            pipe.hgetall(self._keys.batch(batch_id))
        summaries = (
            summary_from(batch_id, fields)
            for batch_id, fields in zip(batch_ids, pipe.execute(), strict=True)
        )
        return [summary for summary in summaries if summary is not None]

    def count(self) -> int:
        """How many batches the ledger holds."""
        return int(self._redis.zcard(self._keys.batches))

    def ended_since(self, batch_id: str, since: float) -> int:
        """How many of the batch's jobs ended from the start of the minute holding
        `since` until now (the ledger counts ends per minute)."""
        first, last = int(since // 60), int(self._clock() // 60)
        minutes = [str(minute) for minute in range(first, last + 1)]
        counts = self._redis.hmget(self._keys.batch_ends(batch_id), minutes)
        return sum(int(count) for count in counts if count is not None)

    def cancel(self, batch_id: str) -> int:
        """Submit nothing more of the batch; return how many jobs not yet dispatched were
        cancelled. Jobs already with the provider still finish; a rolling batch records
        later jobs as cancelled."""
        self._redis.hset(self._keys.batch(batch_id), "cancelled", 1)
        for account in self._scripts.context.pools:
            self._redis.zrem(self._keys.pool(account).ready, batch_id)
        return self._move_all(batch_id, JobState.QUEUED, JobState.CANCELLED, {}) + self._move_all(
            batch_id, JobState.AWAITING_MASK, JobState.CANCELLED, {}
        )

    def is_cancelled(self, batch_id: str) -> bool:
        return self._redis.hget(self._keys.batch(batch_id), "cancelled") == "1"

    def retry_failed(self, batch_id: str) -> int:
        """Put every failed job of the batch back in line, each to get a new attempt (a
        cancelled batch takes submissions again); return how many."""
        job_ids = self._jobs.failed_ids(batch_id)
        return sum(self.retry(JobRef(batch_id, job_id)) for job_id in job_ids)

    def retry(self, ref: JobRef) -> bool:
        """Put one failed job back in line for a new attempt (its batch takes submissions
        again if it was cancelled); False when the job is not failed."""
        self._redis.hdel(self._keys.batch(ref.batch_id), "cancelled")
        move = self._jobs.transition(
            ref, from_states=[JobState.FAILED], to_state=JobState.QUEUED, fields={"error": None}
        )
        return move.applied

    def reserve_budget(self, batch_id: str, credits: float) -> float | None:
        """Set aside `credits` of the batch's budget before a paid submit.

        Returns the amount reserved (0 when the batch has no budget), to pass to
        `release_budget` once the provider states the real cost, or None when spending
        it could take the batch over its budget.
        """
        return self._scripts.reserve_budget(batch_id, credits)

    def release_budget(self, batch_id: str, reserved: float) -> None:
        if reserved:
            self._redis.hincrbyfloat(self._keys.batch(batch_id), "reserved_credits", -reserved)

    def mark_results_stale(self, batch_id: str) -> None:
        """Note that a batch's results manifest no longer matches the ledger."""
        self._redis.sadd(self._keys.results_stale, batch_id)

    def pop_stale_results(self, limit: int = STALE_RESULTS_CHUNK) -> list[str]:
        """Take up to `limit` batches whose results manifest needs rewriting."""
        popped = self._redis.spop(self._keys.results_stale, limit) or []
        return [str(batch_id) for batch_id in popped]

    def _move_all(
        self,
        batch_id: str,
        source: JobState,
        target: JobState,
        fields: dict[str, str | None],
    ) -> int:
        refs = [record.ref for record in self._jobs.of_batch(batch_id) if record.state is source]
        return sum(
            self._jobs.transition(ref, from_states=[source], to_state=target, fields=fields).applied
            for ref in refs
        )


def _new_batch_fields(
    now: float, priority: int, source: str, budget_credits: float | None
) -> dict[str | bytes, str | float | int]:
    """A new batch's hash: no jobs counted yet, the budget only when there is one."""
    header: dict[str | bytes, str | float | int] = {
        "created_at": now,
        "total": 0,
        "priority": priority,
        "source": source,
    }
    if budget_credits is not None:
        header["budget_credits"] = budget_credits
    return header


def summary_from(batch_id: str, fields: dict[str, str]) -> BatchSummary | None:
    """A batch's summary from its hash (None for a missing batch)."""
    if not fields:
        return None
    counts = {
        JobState(name[2:]): int(value)
        for name, value in fields.items()
        if name.startswith("n:") and int(value)
    }
    budget = fields.get("budget_credits")
    return BatchSummary(
        batch_id=batch_id,
        total=int(fields.get("total", 0)),
        counts=counts,
        cost_credits=float(fields.get("cost_credits", 0.0)),
        created_at=float(fields.get("created_at", 0.0)),
        budget_credits=None if budget is None else float(budget),
        cancelled=fields.get("cancelled") == "1",
        priority=int(fields.get("priority", DEFAULT_PRIORITY)),
        source=fields.get("source", ""),
    )
