"""The job ledger in Redis: one hash per job, counters per batch, atomic transitions.

Keys (prefix `fp:`):
    fp:job:<batch>:<job>       hash: spec (JSON), state, attempt, provider fields, error
    fp:batch:<batch>           hash: created_at, total, n:<state> counters, cost_credits
    fp:batch:<batch>:jobs      list of job ids in manifest order
    fp:batches                 sorted set of batch ids by creation time
    fp:awaiting                sorted set of job keys awaiting a result, scored by the
                               time their callback is late (the reconcile sweep reads it)
    fp:callback:<batch>:<job>:<attempt>   set once by the first verified callback
    fp:results-stale           set of batches whose results.jsonl is behind the ledger

Every state change runs in one Lua script that checks the current state (and attempt)
first, so racing callbacks, polls and redelivered tasks change a job at most once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

import redis

from pipeline.models import JobRecord, JobRef, JobSpec, JobState

KEY_PREFIX = "fp:"
CALLBACK_MARK_TTL_S = 7 * 24 * 3600
READ_CHUNK = 500

_TRANSITION = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {0, ''} end
if not string.find(',' .. ARGV[1] .. ',', ',' .. state .. ',', 1, true) then
  return {0, state}
end
if ARGV[2] ~= '' and redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[2] then
  return {0, state}
end
local new_state = ARGV[3]
local attempt = tonumber(redis.call('HGET', KEYS[1], 'attempt'))
if ARGV[4] == '1' then
  attempt = attempt + 1
  redis.call('HSET', KEYS[1], 'attempt', attempt)
end
redis.call('HSET', KEYS[1], 'state', new_state, 'updated_at', ARGV[5])
for i = 8, #ARGV, 2 do
  if ARGV[i + 1] == '' then
    redis.call('HDEL', KEYS[1], ARGV[i])
  else
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
if state ~= new_state then
  redis.call('HINCRBY', KEYS[2], 'n:' .. state, -1)
  redis.call('HINCRBY', KEYS[2], 'n:' .. new_state, 1)
end
if ARGV[7] ~= '' then
  redis.call('HINCRBYFLOAT', KEYS[2], 'cost_credits', ARGV[7])
end
if ARGV[6] ~= '' then
  redis.call('ZADD', KEYS[3], ARGV[6], KEYS[1])
else
  redis.call('ZREM', KEYS[3], KEYS[1])
end
return {1, state, attempt}
"""


_RESERVE = """
local budget = redis.call('HGET', KEYS[1], 'budget_credits')
if not budget then return '0' end
local spent = tonumber(redis.call('HGET', KEYS[1], 'cost_credits') or '0')
local reserved = tonumber(redis.call('HGET', KEYS[1], 'reserved_credits') or '0')
if spent + reserved + tonumber(ARGV[1]) > tonumber(budget) then return '-1' end
redis.call('HINCRBYFLOAT', KEYS[1], 'reserved_credits', ARGV[1])
return ARGV[1]
"""


@dataclass(frozen=True)
class Transition:
    """The outcome of a transition attempt: whether it applied, and from which state."""

    applied: bool
    previous: JobState | None
    attempt: int = 0


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

    @property
    def finished(self) -> int:
        return sum(self.counts.get(state, 0) for state in JobState if state.is_terminal)

    @property
    def done(self) -> bool:
        return self.finished >= self.total


class Ledger:
    """Reads and changes job records in Redis. Thread-safe; create one per process."""

    def __init__(self, client: redis.Redis, *, clock: Callable[[], float] = time.time) -> None:
        self._redis = client
        self._clock = clock
        self._transition = client.register_script(_TRANSITION)
        self._reserve = client.register_script(_RESERVE)

    @classmethod
    def from_url(cls, url: str, *, clock: Callable[[], float] = time.time) -> Ledger:
        return cls(redis.Redis.from_url(url, decode_responses=True), clock=clock)

    def __repr__(self) -> str:
        return "Ledger()"

    @property
    def redis(self) -> redis.Redis:
        return self._redis

    # -- batches -----------------------------------------------------------------------

    def create_batch(
        self, batch_id: str, specs: Iterable[JobSpec], *, budget_credits: float | None = None
    ) -> int:
        """Record a batch and its jobs as `queued` in pipelined chunks; return the count."""
        now = self._clock()
        total = 0
        pipe = self._redis.pipeline(transaction=False)
        header: dict[str | bytes, float | int] = {"created_at": now, "total": 0}
        if budget_credits is not None:
            header["budget_credits"] = budget_credits
        pipe.hset(_batch_key(batch_id), mapping=header)
        pipe.zadd(f"{KEY_PREFIX}batches", {batch_id: now})
        for spec in specs:
            if spec.ref.batch_id != batch_id:
                raise ValueError(f"job {spec.ref} does not belong to batch {batch_id}")
            pipe.hset(_job_key(spec.ref), mapping=_new_job_fields(spec, now))
            pipe.rpush(_jobs_key(batch_id), spec.ref.job_id)
            total += 1
            if total % READ_CHUNK == 0:
                pipe.execute()
        pipe.hincrby(_batch_key(batch_id), "total", total)
        pipe.hincrby(_batch_key(batch_id), f"n:{JobState.QUEUED}", total)
        pipe.execute()
        return total

    def summary(self, batch_id: str) -> BatchSummary | None:
        fields = self._redis.hgetall(_batch_key(batch_id))
        if not fields:
            return None
        counts = {
            JobState(name[2:]): int(value)
            for name, value in fields.items()
            if name.startswith("n:") and int(value)
        }
        return BatchSummary(
            batch_id=batch_id,
            total=int(fields.get("total", 0)),
            counts=counts,
            cost_credits=float(fields.get("cost_credits", 0.0)),
            created_at=float(fields.get("created_at", 0.0)),
            budget_credits=_optional_float(fields.get("budget_credits")),
            cancelled=fields.get("cancelled") == "1",
        )

    def cancel(self, batch_id: str) -> int:
        """Stop a batch: no job of it is submitted from now on. Return how many queued
        jobs were cancelled; jobs already with the provider still finish."""
        self._redis.hset(_batch_key(batch_id), "cancelled", 1)
        return self._move_all(batch_id, JobState.QUEUED, JobState.CANCELLED)

    def reserve_budget(self, batch_id: str, credits: float) -> float | None:
        """Set aside `credits` of the batch's budget before a paid submit.

        Returns the amount reserved (0 when the batch has no budget) to pass to
        `release_budget` once the provider states the real cost, or None when spending
        it could take the batch over its budget.
        """
        reserved = float(self._reserve(keys=[_batch_key(batch_id)], args=[repr(credits)]))
        return None if reserved < 0 else reserved

    def release_budget(self, batch_id: str, reserved: float) -> None:
        if reserved:
            self._redis.hincrbyfloat(_batch_key(batch_id), "reserved_credits", -reserved)

    def is_cancelled(self, batch_id: str) -> bool:
        return self._redis.hget(_batch_key(batch_id), "cancelled") == "1"

    def requeue_failed(self, batch_id: str) -> list[JobRef]:
        """Put every failed job of the batch back in `queued` (each gets a new attempt);
        a cancelled batch takes submissions again."""
        self._redis.hdel(_batch_key(batch_id), "cancelled")
        refs = [record.ref for record in self.jobs(batch_id) if record.state is JobState.FAILED]
        return [
            ref
            for ref in refs
            if self.transition(
                ref, from_states=[JobState.FAILED], to_state=JobState.QUEUED, fields={"error": None}
            ).applied
        ]

    def _move_all(self, batch_id: str, from_state: JobState, to_state: JobState) -> int:
        moved = 0
        for record in self.jobs(batch_id):
            if record.state is from_state:
                moved += self.transition(
                    record.ref, from_states=[from_state], to_state=to_state
                ).applied
        return moved

    def job_ids(self, batch_id: str) -> Iterator[str]:
        """The batch's job ids in manifest order, read in chunks."""
        start = 0
        while True:
            chunk = self._redis.lrange(_jobs_key(batch_id), start, start + READ_CHUNK - 1)
            yield from chunk
            if len(chunk) < READ_CHUNK:
                return
            start += READ_CHUNK

    def jobs(self, batch_id: str) -> Iterator[JobRecord]:
        """The batch's job records in manifest order, fetched in pipelined chunks."""
        ids: list[str] = []
        for job_id in self.job_ids(batch_id):
            ids.append(job_id)
            if len(ids) == READ_CHUNK:
                yield from self._records(batch_id, ids)
                ids = []
        yield from self._records(batch_id, ids)

    # -- jobs --------------------------------------------------------------------------

    def get(self, ref: JobRef) -> JobRecord | None:
        return _record(self._redis.hgetall(_job_key(ref)))

    def transition(
        self,
        ref: JobRef,
        *,
        from_states: Iterable[JobState],
        to_state: JobState,
        attempt: int | None = None,
        new_attempt: bool = False,
        fields: Mapping[str, str | int | float | None] | None = None,
        cost_credits: float | None = None,
        late_at: float | None = None,
    ) -> Transition:
        """Move a job to `to_state` if it is in one of `from_states` (and at `attempt`).

        `fields` are set on the job (None deletes one); `cost_credits` is added to the
        batch's spend; `late_at` files the job for the reconcile sweep (else unfiles it);
        `new_attempt` increments the attempt counter.
        """
        args: list[str | int | float] = [
            ",".join(state.value for state in from_states),
            "" if attempt is None else str(attempt),
            to_state.value,
            "1" if new_attempt else "0",
            repr(self._clock()),
            "" if late_at is None else repr(late_at),
            "" if cost_credits is None else repr(cost_credits),
        ]
        for name, value in (fields or {}).items():
            args.extend([name, "" if value is None else str(value)])
        keys = [_job_key(ref), _batch_key(ref.batch_id), f"{KEY_PREFIX}awaiting"]
        applied, previous, *rest = self._transition(keys=keys, args=args)
        return Transition(
            applied=bool(applied),
            previous=JobState(previous) if previous else None,
            attempt=int(rest[0]) if rest else 0,
        )

    def mark_callback(self, ref: JobRef, attempt: int) -> bool:
        """Record the first verified callback of an attempt; False if one came before."""
        key = f"{KEY_PREFIX}callback:{ref.batch_id}:{ref.job_id}:{attempt}"
        return bool(self._redis.set(key, "1", nx=True, ex=CALLBACK_MARK_TTL_S))

    def mark_results_stale(self, batch_id: str) -> None:
        """Note that a batch's results manifest no longer matches the ledger."""
        self._redis.sadd(f"{KEY_PREFIX}results-stale", batch_id)

    def pop_stale_results(self, limit: int = 100) -> list[str]:
        """Take up to `limit` batches whose results manifest needs rewriting."""
        popped = self._redis.spop(f"{KEY_PREFIX}results-stale", limit) or []
        return [str(batch_id) for batch_id in popped]

    def late_jobs(self, now: float, limit: int = READ_CHUNK) -> list[JobRef]:
        """Jobs awaiting a result whose callback is overdue at `now`."""
        keys = self._redis.zrangebyscore(f"{KEY_PREFIX}awaiting", "-inf", now, 0, limit)
        return [_ref_from_key(key) for key in keys]

    def _records(self, batch_id: str, ids: list[str]) -> Iterator[JobRecord]:
        if not ids:
            return
        pipe = self._redis.pipeline(transaction=False)
        for job_id in ids:
            pipe.hgetall(_job_key(JobRef(batch_id, job_id)))
        for fields in pipe.execute():
            record = _record(fields)
            if record is not None:
                yield record


def _job_key(ref: JobRef) -> str:
    return f"{KEY_PREFIX}job:{ref.batch_id}:{ref.job_id}"


def _ref_from_key(key: str) -> JobRef:
    # Batch ids never contain ':' (see batches.new_batch_id); job ids may.
    batch_id, job_id = key.removeprefix(f"{KEY_PREFIX}job:").split(":", 1)
    return JobRef(batch_id, job_id)


def _batch_key(batch_id: str) -> str:
    return f"{KEY_PREFIX}batch:{batch_id}"


def _jobs_key(batch_id: str) -> str:
    return f"{KEY_PREFIX}batch:{batch_id}:jobs"


def _new_job_fields(spec: JobSpec, now: float) -> dict[str | bytes, str | int | float | bytes]:
    return {"spec": spec.to_json(), "state": JobState.QUEUED.value, "attempt": 0, "updated_at": now}


def _record(fields: Mapping[str, str]) -> JobRecord | None:
    if not fields:
        return None
    return JobRecord(
        spec=JobSpec.from_json(fields["spec"]),
        state=JobState(fields["state"]),
        attempt=int(fields["attempt"]),
        provider_task_id=fields.get("provider_task_id"),
        polling_url=fields.get("polling_url"),
        cost_credits=_optional_float(fields.get("cost_credits")),
        error=fields.get("error"),
        seed=_optional_int(fields.get("seed")),
        updated_at=float(fields.get("updated_at", 0.0)),
    )


def _optional_float(value: str | None) -> float | None:
    return None if value is None else float(value)


def _optional_int(value: str | None) -> int | None:
    return None if value is None else int(value)
