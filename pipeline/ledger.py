"""The job ledger in Redis: job records, batch counters, provider slots, dispatch.

Keys (prefix `fp:`):
    fp:job:<batch>:<job>       hash: spec (JSON), state, attempt, provider fields, error,
                               submitted_at, submitted_via (staged or dispatch) and
                               callback_at (for latency figures)
    fp:batch:<batch>           hash: created_at, total, priority, source (where the
                               batch came from), n:<state> counters, cost_credits,
                               budget and reservations, dispatch cursor
    fp:batch:<batch>:jobs      list of job ids in manifest order (the dispatcher walks
                               it with the batch's cursor)
    fp:batch:<batch>:requeued  list of job ids put back in line (dispatched first)
    fp:batches                 sorted set of batch ids by creation time
    fp:ready                   sorted set of batches with jobs to dispatch, by pass
    fp:leases                  hash: job key -> attempt, one per provider slot in use
    fp:staged                  list of staged job keys (picked ahead of a free slot, their
                               submit tasks reading inputs), oldest first: the next
                               slots to come free go to them, in this order
    fp:go:<batch>:<job>:<n>    list: a staged job's submit task waits on it (BLPOP) for
                               the slot handed to attempt n
    fp:paused, fp:cooldown     while set, nothing is dispatched (402 / 429)
    fp:awaiting                sorted set of job keys in flight, scored by the time
                               they are late (the reconcile sweep reads it)
    fp:callback:<batch>:<job>:<attempt>   set once by the first verified callback
    fp:results-stale           set of batches whose results.jsonl is behind the ledger

Every state change runs in one Lua script that checks the current state (and attempt)
first, so racing callbacks, polls and redelivered tasks change a job at most once. The
same scripts keep the slot leases: dispatch takes one atomically with the job, and a
job that leaves the slot-holding states gives it back, so a lease can neither be taken
twice nor outlive its job. This assumes one Redis (not a cluster): the scripts touch
keys they derive.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from pipeline.models import JobRecord, JobRef, JobSpec, JobState

KEY_PREFIX = "fp:"
CALLBACK_MARK_TTL_S = 7 * 24 * 3600
READ_CHUNK = 500
WRITE_CHUNK = 2000
REDIS_RETRIES = 40
REDIS_RETRY_CAP_S = 1.0
DEFAULT_PRIORITY = 1
# Most jobs one dispatch call leases (more than any account's slot count).
DISPATCH_MAX_JOBS = 1000
_AWAITING_KEY = f"{KEY_PREFIX}awaiting"
_LEASES_KEY = f"{KEY_PREFIX}leases"
_READY_KEY = f"{KEY_PREFIX}ready"
_PAUSED_KEY = f"{KEY_PREFIX}paused"
_COOLDOWN_KEY = f"{KEY_PREFIX}cooldown"
_TROUBLE_KEY = f"{KEY_PREFIX}provider-trouble"
_WAKEUP_KEY = f"{KEY_PREFIX}wakeup"
_STAGED_KEY = f"{KEY_PREFIX}staged"
# A staged job's wake-up is dropped after this long if nobody took it.
GO_TTL_S = 600
# A streak of failures to reach the provider is forgotten after this long without one.
TROUBLE_STREAK_TTL_S = 600

# Puts a batch in the dispatcher's ready set at the smallest pass there, so a batch that
# (re)joins takes its fair share from now on: no catching up, no waiting behind others.
_JOIN_READY = """
local function join_ready(ready, batch)
  if redis.call('ZSCORE', ready, batch) then return end
  local head = redis.call('ZRANGE', ready, 0, 0, 'WITHSCORES')
  local pass = 0
  if #head > 0 then pass = tonumber(head[2]) end
  redis.call('ZADD', ready, pass, batch)
end
"""

# Takes the next job in fair order: the batch with the smallest pass, its next job
# (requeued jobs first, then manifest order); moves it from 'queued' to `new_state` with
# a new attempt, files it to be late at `late_at` and advances the batch's pass by
# 1/priority (stride scheduling: each batch gets slots in proportion to its priority).
# Returns {batch, job id, attempt, job key}, or nil when no batch has a queued job.
_TAKE_NEXT = """
local function take_next(ready, awaiting, prefix, new_state, now, late_at)
  local skipped = 0
  while skipped < 1000 do
    local head = redis.call('ZRANGE', ready, 0, 0, 'WITHSCORES')
    if #head == 0 then return nil end
    local batch, pass = head[1], tonumber(head[2])
    local bkey = prefix .. 'batch:' .. batch
    local job_id = false
    if redis.call('HGET', bkey, 'cancelled') ~= '1' then
      job_id = redis.call('LPOP', bkey .. ':requeued')
      if not job_id then
        local cursor = tonumber(redis.call('HGET', bkey, 'cursor') or '0')
        job_id = redis.call('LINDEX', bkey .. ':jobs', cursor)
        if job_id then redis.call('HSET', bkey, 'cursor', cursor + 1) end
      end
    end
    if not job_id then
      redis.call('ZREM', ready, batch)
    else
      local jkey = prefix .. 'job:' .. batch .. ':' .. job_id
      if redis.call('HGET', jkey, 'state') == 'queued' then
        local attempt = redis.call('HINCRBY', jkey, 'attempt', 1)
        redis.call('HSET', jkey, 'state', new_state, 'updated_at', now)
        redis.call('HINCRBY', bkey, 'n:queued', -1)
        redis.call('HINCRBY', bkey, 'n:' .. new_state, 1)
        redis.call('ZADD', awaiting, late_at, jkey)
        local weight = tonumber(redis.call('HGET', bkey, 'priority') or '1')
        redis.call('ZADD', ready, pass + 1 / weight, batch)
        return {batch, job_id, attempt, jkey}
      end
      skipped = skipped + 1
    end
  end
  return nil
end
"""

# Hands up to `free` slots to staged jobs, oldest first: each becomes 'dispatched' with
# a lease, filed to be late at `late_at`, and its submit task, waiting on the job's go
# key, is woken. Entries of jobs no longer staged are dropped. Returns how many.
_PROMOTE_STAGED = """
local function promote_staged(leases, awaiting, staged, prefix, free, now, late_at)
  local promoted = 0
  while promoted < free do
    local jkey = redis.call('LPOP', staged)
    if not jkey then break end
    local fields = redis.call('HMGET', jkey, 'state', 'attempt')
    if fields[1] == 'staged' then
      local rest = string.sub(jkey, #prefix + 5)
      local bkey = prefix .. 'batch:' .. string.match(rest, '^[^:]*')
      redis.call('HSET', jkey, 'state', 'dispatched', 'updated_at', now)
      redis.call('HINCRBY', bkey, 'n:staged', -1)
      redis.call('HINCRBY', bkey, 'n:dispatched', 1)
      redis.call('HSET', leases, jkey, fields[2])
      redis.call('ZADD', awaiting, late_at, jkey)
      local go = prefix .. 'go:' .. rest .. ':' .. fields[2]
      redis.call('LPUSH', go, '1')
      redis.call('EXPIRE', go, ARGV_GO_TTL)
      promoted = promoted + 1
    end
  end
  return promoted
end
""".replace("ARGV_GO_TTL", str(GO_TTL_S))

# KEYS: job, batch, awaiting, leases, requeued (the batch's), ready, staged
# ARGV: from_states, attempt, to_state, new_attempt, now, late_at, cost, release_slot,
#       requeue, batch_id, job_id, then field name/value pairs
_TRANSITION = (
    _JOIN_READY
    + """
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
for i = 12, #ARGV, 2 do
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
local released = 0
if ARGV[8] == '1' then released = redis.call('HDEL', KEYS[4], KEYS[1]) end
if ARGV[9] == '1' and state ~= new_state then
  redis.call('LPUSH', KEYS[5], ARGV[11])
  join_ready(KEYS[6], ARGV[10])
end
if state == 'staged' and new_state ~= 'staged' then redis.call('LREM', KEYS[7], 0, KEYS[1]) end
return {1, state, attempt, released}
"""
)

# Fill free slots: first with staged jobs (their inputs are read already), then with
# the next queued jobs in fair order (`take_next`), leasing a slot to each.
# KEYS: ready, leases, awaiting, staged; ARGV: capacity, now, deadline_s, max_jobs,
# key prefix. Returns {batch, job id, attempt} of each queued job it leased a slot to.
_DISPATCH = (
    _TAKE_NEXT
    + _PROMOTE_STAGED
    + """
local prefix = ARGV[5]
if redis.call('EXISTS', prefix .. 'paused', prefix .. 'cooldown') > 0 then return {} end
local capacity, now = tonumber(ARGV[1]), tonumber(ARGV[2])
local late_at, max_jobs = now + tonumber(ARGV[3]), tonumber(ARGV[4])
local free = capacity - redis.call('HLEN', KEYS[2])
if free > 0 then
  promote_staged(KEYS[2], KEYS[3], KEYS[4], prefix, free, ARGV[2], late_at)
end
local out, taken = {}, 0
while taken < max_jobs and redis.call('HLEN', KEYS[2]) < capacity do
  local job = take_next(KEYS[1], KEYS[3], prefix, 'dispatched', ARGV[2], late_at)
  if not job then break end
  redis.call('HSET', KEYS[2], job[4], job[3])
  table.insert(out, job[1])
  table.insert(out, job[2])
  table.insert(out, job[3])
  taken = taken + 1
end
return out
"""
)

# Stage jobs ahead of free slots: while every slot is in use, fewer than `depth` jobs
# are staged and fewer than `max_new` were staged here, take the next queued job in
# fair order as 'staged' (no lease).
# KEYS: ready, leases, awaiting, staged; ARGV: capacity, now, deadline_s, depth, prefix,
# max_new. Returns {batch, job id, attempt} of each job it staged.
_STAGE = (
    _TAKE_NEXT
    + """
local prefix = ARGV[5]
if redis.call('EXISTS', prefix .. 'paused', prefix .. 'cooldown') > 0 then return {} end
local capacity, depth, max_new = tonumber(ARGV[1]), tonumber(ARGV[4]), tonumber(ARGV[6])
local late_at = tonumber(ARGV[2]) + tonumber(ARGV[3])
local out = {}
while #out < 3 * max_new and redis.call('HLEN', KEYS[2]) >= capacity
    and redis.call('LLEN', KEYS[4]) < depth do
  local job = take_next(KEYS[1], KEYS[3], prefix, 'staged', ARGV[2], late_at)
  if not job then break end
  redis.call('RPUSH', KEYS[4], job[4])
  table.insert(out, job[1])
  table.insert(out, job[2])
  table.insert(out, job[3])
end
return out
"""
)

# KEYS: ready; ARGV: batch_id
_JOIN = _JOIN_READY + "join_ready(KEYS[1], ARGV[1])\nreturn 1\n"

# Verified callbacks, any number in one round trip (the receiver batches them). Each
# item's answer: 'unknown' (no such job), 'stale' (another attempt, or not in flight),
# 'pending' (the task still runs), 'duplicate' (its final callback came before) or
# 'collect' (the first final one). A first final callback is marked (kept as
# `callback_at`, for latency figures), gives the attempt's provider slot back (the
# provider has ended the task) and queues its collect message, all in this script, so a
# callback is recorded exactly when its collect is queued. The slots that came free go
# at once to staged jobs (unless the account is paused or cooling down), whose submit
# tasks wait with their request bodies built; and the dispatch message is queued once,
# so a worker fills the slots left.
# KEYS: leases, awaiting, staged, paused, cooldown; ARGV: mark ttl, now, collect queue,
#   dispatch queue, dispatch message, key prefix, dispatch deadline (s; '' hands no slot
#   to staged jobs), then per callback: job key, mark key, attempt, final ('1'/'0'),
#   task id or '', collect message ('' queues nothing)
ACCEPT_CALLBACKS = (
    _PROMOTE_STAGED
    + """
local ttl, now = ARGV[1], ARGV[2]
local out, released = {}, 0
for i = 8, #ARGV, 6 do
  local job, mark, attempt = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local fields = redis.call('HMGET', job, 'state', 'attempt')
  local state = fields[1]
  local answer
  if not state then
    answer = 'unknown'
  elseif fields[2] ~= attempt then
    answer = 'stale'
  elseif state ~= 'submitting' and state ~= 'awaiting_result' and state ~= 'collecting' then
    answer = 'stale'
  elseif ARGV[i + 3] ~= '1' then
    answer = 'pending'
  else
    if ARGV[i + 4] ~= '' then redis.call('HSETNX', job, 'provider_task_id', ARGV[i + 4]) end
    if not redis.call('SET', mark, '1', 'NX', 'EX', ttl) then
      answer = 'duplicate'
    else
      answer = 'collect'
      redis.call('HSET', job, 'callback_at', now)
      if redis.call('HGET', KEYS[1], job) == attempt then
        released = released + redis.call('HDEL', KEYS[1], job)
      end
      if ARGV[i + 5] ~= '' then redis.call('LPUSH', ARGV[3], ARGV[i + 5]) end
    end
  end
  table.insert(out, answer)
end
if released > 0 and ARGV[7] ~= '' and redis.call('EXISTS', KEYS[4], KEYS[5]) == 0 then
  promote_staged(KEYS[1], KEYS[2], KEYS[3], ARGV[6], released, now, now + tonumber(ARGV[7]))
end
if released > 0 and ARGV[5] ~= '' then redis.call('LPUSH', ARGV[4], ARGV[5]) end
return out
"""
)

# Give a slot back, once, and only for the attempt that holds it.
# KEYS: leases, job; ARGV: attempt
_RELEASE = """
if redis.call('HGET', KEYS[1], KEYS[2]) ~= ARGV[1] then return 0 end
return redis.call('HDEL', KEYS[1], KEYS[2])
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
    released_slot: bool = False


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
    # Where the batch came from (a manifest's path or s3:// URI, "demo"); "" if unrecorded.
    source: str = ""

    @property
    def finished(self) -> int:
        return sum(self.counts.get(state, 0) for state in JobState if state.is_terminal)

    @property
    def done(self) -> bool:
        return self.finished >= self.total


@dataclass(frozen=True)
class AccountState:
    """The provider account as the dispatcher sees it."""

    slots_in_use: int
    paused_reason: str | None
    cooldown_s: float

    def describe(self, capacity: int) -> str:
        text = f"slots {self.slots_in_use}/{capacity}"
        if self.paused_reason:
            text += f"; PAUSED: {self.paused_reason} (then run `fillpipe resume`)"
        elif self.cooldown_s:
            text += f"; provider asked to wait {self.cooldown_s:.1f} s"
        return text


@dataclass(frozen=True)
class CallbackEntry:
    """One verified callback to record: its job and attempt, whether the provider says
    the task ended, the task id it names, and the collect message to queue if it is
    the first final one ('' queues nothing)."""

    ref: JobRef
    attempt: int
    final: bool
    task_id: str | None
    collect_message: str = ""


@dataclass(frozen=True)
class FollowUps:
    """Where `ACCEPT_CALLBACKS` queues follow-up work: the collect messages' list and,
    once a callback frees a slot, `dispatch_message` on `dispatch_queue`."""

    collect_queue: str = ""
    dispatch_queue: str = ""
    dispatch_message: str = ""
    # Hand freed slots to staged jobs at once, filing each to be late after this long
    # (the dispatch deadline); None leaves them to the dispatch message's worker.
    handoff_late_s: float | None = None


def accept_callbacks_call(
    entries: Iterable[CallbackEntry], *, now: float, follow_ups: FollowUps = FollowUps()
) -> tuple[list[str], list[str | int]]:
    """The keys and arguments of one `ACCEPT_CALLBACKS` run over `entries`."""
    args: list[str | int] = [
        CALLBACK_MARK_TTL_S,
        repr(now),
        follow_ups.collect_queue,
        follow_ups.dispatch_queue,
        follow_ups.dispatch_message,
        KEY_PREFIX,
        "" if follow_ups.handoff_late_s is None else repr(follow_ups.handoff_late_s),
    ]
    for entry in entries:
        ref, attempt = entry.ref, entry.attempt
        args += [
            _job_key(ref),
            f"{KEY_PREFIX}callback:{ref.batch_id}:{ref.job_id}:{attempt}",
            str(attempt),
            "1" if entry.final else "0",
            entry.task_id or "",
            entry.collect_message,
        ]
    return [_LEASES_KEY, _AWAITING_KEY, _STAGED_KEY, _PAUSED_KEY, _COOLDOWN_KEY], args


class Ledger:
    """Reads and changes job records in Redis. Thread-safe; create one per process."""

    def __init__(self, client: redis.Redis, *, clock: Callable[[], float] = time.time) -> None:
        self._redis = client
        self._clock = clock
        self._transition = client.register_script(_TRANSITION)
        self._dispatch = client.register_script(_DISPATCH)
        self._stage = client.register_script(_STAGE)
        self._join = client.register_script(_JOIN)
        self._release = client.register_script(_RELEASE)
        self._accept_callbacks = client.register_script(ACCEPT_CALLBACKS)
        self._reserve = client.register_script(_RESERVE)

    @classmethod
    def from_url(cls, url: str, *, clock: Callable[[], float] = time.time) -> Ledger:
        """A ledger on `url` whose commands ride out a Redis restart (see `redis_client`)."""
        return cls(redis_client(url), clock=clock)

    def __repr__(self) -> str:
        return "Ledger()"

    @property
    def redis(self) -> redis.Redis:
        return self._redis

    # -- batches -----------------------------------------------------------------------

    def create_batch(
        self,
        batch_id: str,
        specs: Iterable[JobSpec],
        *,
        budget_credits: float | None = None,
        priority: int = DEFAULT_PRIORITY,
        source: str = "",
    ) -> int:
        """Record a batch and its jobs as `queued` in pipelined chunks; return the count.

        The batch joins the dispatcher's ready set once every job is recorded. `source`
        says where the batch came from, for listings (`recent_batches`).
        """
        now = self._clock()
        total = 0
        pipe = self._redis.pipeline(transaction=False)
        header: dict[str | bytes, float | int | str] = {
            "created_at": now,
            "total": 0,
            "priority": priority,
        }
        if budget_credits is not None:
            header["budget_credits"] = budget_credits
        if source:
            header["source"] = source
        pipe.hset(_batch_key(batch_id), mapping=header)
        pipe.zadd(f"{KEY_PREFIX}batches", {batch_id: now})
        for spec in specs:
            if spec.ref.batch_id != batch_id:
                raise ValueError(f"job {spec.ref} does not belong to batch {batch_id}")
            pipe.hset(_job_key(spec.ref), mapping=_new_job_fields(spec, now))
            pipe.rpush(_jobs_key(batch_id), spec.ref.job_id)
            total += 1
            if total % WRITE_CHUNK == 0:
                pipe.execute()
        pipe.hincrby(_batch_key(batch_id), "total", total)
        pipe.hincrby(_batch_key(batch_id), f"n:{JobState.QUEUED}", total)
        pipe.execute()
        self._join(keys=[_READY_KEY], args=[batch_id])
        return total

    def summary(self, batch_id: str) -> BatchSummary | None:
        return _batch_summary(batch_id, self._redis.hgetall(_batch_key(batch_id)))

    def recent_batches(self, limit: int) -> list[BatchSummary]:
        """The `limit` most recently created batches, newest first, in one pipelined read."""
        if limit < 1:
            return []
        batch_ids = self._redis.zrevrange(f"{KEY_PREFIX}batches", 0, limit - 1)
        pipe = self._redis.pipeline(transaction=False)
        for batch_id in batch_ids:
            pipe.hgetall(_batch_key(batch_id))
        found = zip(batch_ids, pipe.execute(), strict=True)
        return [summary for b, f in found if (summary := _batch_summary(b, f)) is not None]

    def cancel(self, batch_id: str) -> int:
        """Stop a batch: no job of it is submitted from now on. Return how many queued
        jobs were cancelled; jobs already with the provider still finish."""
        self._redis.hset(_batch_key(batch_id), "cancelled", 1)
        self._redis.zrem(_READY_KEY, batch_id)
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
        `new_attempt` increments the attempt counter. A job moving to a state that holds
        no slot gives its slot back; a job moving to `queued` goes to the front of its
        batch's line for the dispatcher.
        """
        args: list[str | int | float] = [
            ",".join(state.value for state in from_states),
            "" if attempt is None else str(attempt),
            to_state.value,
            "1" if new_attempt else "0",
            repr(self._clock()),
            "" if late_at is None else repr(late_at),
            "" if cost_credits is None else repr(cost_credits),
            "0" if to_state.holds_slot else "1",
            "1" if to_state is JobState.QUEUED else "0",
            ref.batch_id,
            ref.job_id,
        ]
        for name, value in (fields or {}).items():
            args.extend([name, "" if value is None else str(value)])
        keys = [
            _job_key(ref),
            _batch_key(ref.batch_id),
            _AWAITING_KEY,
            _LEASES_KEY,
            _requeued_key(ref.batch_id),
            _READY_KEY,
            _STAGED_KEY,
        ]
        applied, previous, *rest = self._transition(keys=keys, args=args)
        return Transition(
            applied=bool(applied),
            previous=JobState(previous) if previous else None,
            attempt=int(rest[0]) if rest else 0,
            released_slot=bool(rest[1]) if len(rest) > 1 else False,
        )

    # -- slots and dispatch ------------------------------------------------------------

    def dispatch(
        self, *, capacity: int, deadline_s: float, max_jobs: int = DISPATCH_MAX_JOBS
    ) -> list[tuple[JobRef, int]]:
        """Lease free slots (at most `capacity` in use) to queued jobs, fairly across
        batches by priority; return each dispatched job with its new attempt.

        Dispatched jobs are filed to be late after `deadline_s`: one whose submit never
        starts by then goes back to the front of its line. Nothing is dispatched while
        the account is paused or cooling down.
        """
        out = self._dispatch(
            keys=[_READY_KEY, _LEASES_KEY, _AWAITING_KEY, _STAGED_KEY],
            args=[capacity, repr(self._clock()), repr(deadline_s), max_jobs, KEY_PREFIX],
        )
        return _dispatched(out)

    def stage(
        self, *, capacity: int, depth: int, deadline_s: float, max_new: int | None = None
    ) -> list[tuple[JobRef, int]]:
        """While every slot is in use, pick up to `depth` jobs (in all; at most `max_new`
        in this call) ahead of the next free slots, fairly as `dispatch` does: each
        becomes `staged`, with no slot, and its submit task reads its inputs and waits
        (`wait_for_slot`). The next slots to come free go to staged jobs first, oldest
        first. Returns each with its attempt.

        Staged jobs are filed to be late after `deadline_s`, as dispatched ones are.
        """
        out = self._stage(
            keys=[_READY_KEY, _LEASES_KEY, _AWAITING_KEY, _STAGED_KEY],
            args=[
                capacity,
                repr(self._clock()),
                repr(deadline_s),
                depth,
                KEY_PREFIX,
                depth if max_new is None else max_new,
            ],
        )
        return _dispatched(out)

    def wait_for_slot(self, ref: JobRef, attempt: int, *, timeout_s: float) -> bool:
        """Block up to `timeout_s` until a slot is handed to staged `attempt` of the job;
        True once it has been (the job is then `dispatched`, holding the slot)."""
        go = f"{KEY_PREFIX}go:{ref.batch_id}:{ref.job_id}:{attempt}"
        return self._redis.blpop([go], timeout=timeout_s) is not None

    def staged(self) -> list[JobRef]:
        """The staged jobs in the order the next free slots go to them."""
        return [_ref_from_key(key) for key in self._redis.lrange(_STAGED_KEY, 0, -1)]

    def release_slot(self, ref: JobRef, attempt: int) -> bool:
        """Give back the slot `attempt` of the job holds; True only the one time it does."""
        return bool(self._release(keys=[_LEASES_KEY, _job_key(ref)], args=[attempt]))

    def leases(self) -> dict[JobRef, int]:
        """Every slot in use: the job holding it and that job's attempt."""
        return {
            _ref_from_key(key): int(attempt)
            for key, attempt in self._redis.hgetall(_LEASES_KEY).items()
        }

    def pause(self, reason: str) -> None:
        """Stop dispatching for the whole account until `resume` (e.g. out of credits)."""
        self._redis.set(_PAUSED_KEY, reason)

    def resume(self) -> bool:
        """Lift a pause; False if the account was not paused."""
        return bool(self._redis.delete(_PAUSED_KEY))

    def paused_reason(self) -> str | None:
        return self._redis.get(_PAUSED_KEY)

    def account(self) -> AccountState:
        pipe = self._redis.pipeline(transaction=False)
        pipe.hlen(_LEASES_KEY)
        pipe.get(_PAUSED_KEY)
        pipe.pttl(_COOLDOWN_KEY)
        in_use, reason, cooldown_ms = pipe.execute()
        return AccountState(int(in_use), reason, max(0.0, cooldown_ms / 1000))

    def cool_down(self, seconds: float) -> None:
        """Dispatch nothing for `seconds` (the provider asked to wait: 429 Retry-After)."""
        self._redis.set(_COOLDOWN_KEY, "1", px=max(1, int(seconds * 1000)))

    def claim_wakeup(self, seconds: float) -> bool:
        """True for the one caller that should schedule the dispatch ending a cool-down."""
        ms = max(1, int(seconds * 1000))
        return bool(self._redis.set(_WAKEUP_KEY, "1", nx=True, px=ms))

    def provider_trouble(self) -> int:
        """Count one more failure in a row to reach the provider; return the streak."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.incr(_TROUBLE_KEY)
        pipe.expire(_TROUBLE_KEY, TROUBLE_STREAK_TTL_S)
        streak, _ = pipe.execute()
        return int(streak)

    def provider_fine(self) -> None:
        """The provider took a submit: end any streak of failures."""
        self._redis.delete(_TROUBLE_KEY)

    def cooldown_left_s(self) -> float:
        """Seconds until dispatching resumes after a cool-down (0 when not cooling)."""
        left_ms = self._redis.pttl(_COOLDOWN_KEY)
        return max(0.0, left_ms / 1000)

    def accept_callback(
        self, ref: JobRef, attempt: int, *, final: bool, task_id: str | None
    ) -> str:
        """Record one verified callback for `attempt`, queueing no messages; see
        `ACCEPT_CALLBACKS` for the answers (the receiver records them in batches, with
        messages, through `pipeline.recorder`)."""
        entry = CallbackEntry(ref, attempt, final=final, task_id=task_id)
        keys, args = accept_callbacks_call([entry], now=self._clock())
        return str(self._accept_callbacks(keys=keys, args=args)[0])

    def mark_results_stale(self, batch_id: str) -> None:
        """Note that a batch's results manifest no longer matches the ledger."""
        self._redis.sadd(f"{KEY_PREFIX}results-stale", batch_id)

    def pop_stale_results(self, limit: int = 100) -> list[str]:
        """Take up to `limit` batches whose results manifest needs rewriting."""
        popped = self._redis.spop(f"{KEY_PREFIX}results-stale", limit) or []
        return [str(batch_id) for batch_id in popped]

    def unfile(self, ref: JobRef) -> None:
        """Take a job off the reconcile sweep's list (it needs no watching)."""
        self._redis.zrem(_AWAITING_KEY, _job_key(ref))

    def late_jobs(self, now: float, limit: int = READ_CHUNK) -> list[JobRef]:
        """Jobs awaiting a result whose callback is overdue at `now`."""
        keys = self._redis.zrangebyscore(_AWAITING_KEY, "-inf", now, 0, limit)
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


def redis_client(url: str) -> redis.Redis:
    """A client that retries a command for up to ~30 s while Redis is unreachable.

    A command cut off mid-flight may run twice; every ledger write is a script that
    checks state first, so a repeat changes nothing (a repeated dispatch leases jobs
    whose submits are never sent: the reconcile sweep puts them back in line).
    """
    return redis.Redis.from_url(url, **redis_client_options(Retry))


def redis_client_options(retry_class: Callable[..., Any]) -> dict[str, Any]:
    """The options of every fillpipe Redis client, sync (`redis.retry.Retry`) or asyncio
    (`redis.asyncio.retry.Retry`): decoded replies, ~30 s of retries, short timeouts."""
    return {
        "decode_responses": True,
        "retry": retry_class(ExponentialBackoff(cap=REDIS_RETRY_CAP_S, base=0.05), REDIS_RETRIES),
        "retry_on_error": [redis.ConnectionError, redis.TimeoutError],
        "socket_connect_timeout": 5,
        "health_check_interval": 30,
    }


def _dispatched(out: list[str]) -> list[tuple[JobRef, int]]:
    """The flat {batch, job id, attempt, ...} answer of the dispatch scripts, as pairs."""
    return [(JobRef(out[i], out[i + 1]), int(out[i + 2])) for i in range(0, len(out), 3)]


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


def _requeued_key(batch_id: str) -> str:
    return f"{KEY_PREFIX}batch:{batch_id}:requeued"


def _new_job_fields(spec: JobSpec, now: float) -> dict[str | bytes, str | int | float | bytes]:
    return {"spec": spec.to_json(), "state": JobState.QUEUED.value, "attempt": 0, "updated_at": now}


def _batch_summary(batch_id: str, fields: Mapping[str, str]) -> BatchSummary | None:
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
        priority=int(fields.get("priority", DEFAULT_PRIORITY)),
        source=fields.get("source", ""),
    )


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
        input_troubles=int(fields.get("input_troubles", 0)),
        updated_at=float(fields.get("updated_at", 0.0)),
    )


def _optional_float(value: str | None) -> float | None:
    return None if value is None else float(value)


def _optional_int(value: str | None) -> int | None:
    return None if value is None else int(value)
