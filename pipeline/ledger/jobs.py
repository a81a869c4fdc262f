"""Job records: reading them, and moving them from state to state."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

import redis

from pipeline.ledger.keys import Keys
from pipeline.ledger.scripts import FieldValue, Scripts, Transition
from pipeline.models import JobRecord, JobRef, JobSpec
from pipeline.states import JobState, check_move

READ_CHUNK = 500


@dataclass(frozen=True)
class ClaimedPolls:
    """Polls claimed in one step: the jobs and attempts a collect was queued for, and
    when the earliest poll left is due (None: none is filed)."""

    jobs: list[tuple[JobRef, int]]
    next_due_at: float | None


class JobStore:
    """The ledger's job records."""

    def __init__(self, client: redis.Redis, keys: Keys, scripts: Scripts) -> None:
        self._redis = client
        self._keys = keys
        self._scripts = scripts

    def get(self, ref: JobRef) -> JobRecord | None:
        return record_from(self._redis.hgetall(self._keys.job(ref)))

    def ids(self, batch_id: str) -> Iterator[str]:
        """The batch's job ids in manifest order, read in chunks."""
        start = 0
        while True:
            chunk = self._redis.lrange(
                self._keys.batch_jobs(batch_id), start, start + READ_CHUNK - 1
            )
            yield from chunk
            if len(chunk) < READ_CHUNK:
                return
            start += READ_CHUNK

    def of_batch(self, batch_id: str) -> Iterator[JobRecord]:
        """The batch's job records in manifest order, fetched in pipelined chunks."""
        ids: list[str] = []
        for job_id in self.ids(batch_id):
            ids.append(job_id)
            if len(ids) == READ_CHUNK:
                yield from self._records(batch_id, ids)
                ids = []
        yield from self._records(batch_id, ids)

    def page(self, batch_id: str, start: int, count: int) -> list[JobRecord]:
        """`count` of the batch's jobs from position `start`, in manifest order."""
        ids = self._redis.lrange(self._keys.batch_jobs(batch_id), start, start + count - 1)
        return list(self._records(batch_id, ids))

    def failed_page(self, batch_id: str, start: int, count: int) -> list[JobRecord]:
        """`count` of the batch's failed jobs from position `start`, in the order they
        failed."""
        ids = self._redis.zrange(self._keys.batch_failed(batch_id), start, start + count - 1)
        return list(self._records(batch_id, ids))

    def failed_ids(self, batch_id: str) -> list[str]:
        """The batch's failed job ids, in the order they failed."""
        return list(self._redis.zrange(self._keys.batch_failed(batch_id), 0, -1))

    def transition(
        self,
        ref: JobRef,
        *,
        from_states: Iterable[JobState],
        to_state: JobState,
        attempt: int | None = None,
        new_attempt: bool = False,
        fields: Mapping[str, FieldValue] | None = None,
        cost_delta: float | None = None,
        late_at: float | None = None,
        follow_up: str | None = None,
    ) -> Transition:
        """Move a job to `to_state` if it is in one of `from_states` (and at `attempt`).

        Every move is checked against `pipeline.states.TRANSITIONS` first. `fields` are
        set on the job (None deletes one); `cost_delta` is added to the batch's spend;
        `late_at` files the job for the reconcile sweep (None unfiles it); `follow_up`
        queues a task for the job in the outbox (e.g. "collect"). A job moving to a
        state that holds no slot gives its slot back; one moving to `queued` goes to the
        front of its batch's line; either way the dispatcher fills what came free.
        """
        sources = list(from_states)
        for source in sources:
            check_move(source, to_state)
        return self._scripts.transition(
            ref,
            from_states=sources,
            to_state=to_state,
            attempt=attempt,
            new_attempt=new_attempt,
            fields=fields,
            cost_delta=cost_delta,
            late_at=late_at,
            follow_up=follow_up,
        )

    def late(self, now: float, limit: int = READ_CHUNK) -> list[JobRef]:
        """Jobs in flight whose deadline for their step has passed at `now`."""
        keys = self._redis.zrangebyscore(self._keys.awaiting, "-inf", now, 0, limit)
        return [self._keys.ref(key) for key in keys]

    def unfile(self, ref: JobRef) -> None:
        """Take a job off the reconcile sweep's list (it needs no watching)."""
        self._redis.zrem(self._keys.awaiting, self._keys.job(ref))

    def file_poll(self, ref: JobRef, attempt: int, at: float) -> None:
        """File `attempt` of the job's task to be polled at `at` (callbacks off)."""
        self._redis.zadd(self._keys.poll, {f"{attempt}|{self._keys.job(ref)}": at})

    def claim_polls(self, *, limit: int, lease_s: float) -> ClaimedPolls:
        """Take the polls due now, at most `limit`: a collect is queued for each, and
        each is filed again `lease_s` later in the same step, so no other poller takes
        it meanwhile (see `lua/claim_polls.lua`)."""
        claim = self._scripts.claim_polls(limit=limit, lease_s=lease_s)
        jobs = []
        for entry in claim.entries:
            attempt, job_key = entry.split("|", 1)
            jobs.append((self._keys.ref(job_key), int(attempt)))
        return ClaimedPolls(jobs, claim.next_due_at)

    def submitted_at(self, ref: JobRef) -> float | None:
        """When the provider took the job's task (None: not recorded)."""
        value = self._redis.hget(self._keys.job(ref), "submitted_at")
        return None if value is None else float(value)

    def _records(self, batch_id: str, ids: list[str]) -> Iterator[JobRecord]:
        if not ids:
            return
        pipe = self._redis.pipeline(transaction=False)
        for job_id in ids:
            pipe.hgetall(self._keys.job(JobRef(batch_id, job_id)))
        for fields in pipe.execute():
            record = record_from(fields)
            if record is not None:
                yield record


def new_job_fields(spec: JobSpec, now: float) -> dict[str | bytes, str | int | float | bytes]:
    """A job's hash as `create_batch` records it: queued on its account, no attempt yet."""
    return {
        "spec": spec.to_json(),
        "state": JobState.QUEUED.value,
        "attempt": 0,
        "account": spec.account,
        "updated_at": now,
    }


def record_from(fields: Mapping[str, str]) -> JobRecord | None:
    """A job record from its hash (None for a missing job)."""
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
        qa=json.loads(fields["qa"]) if "qa" in fields else None,
    )


def _optional_float(value: str | None) -> float | None:
    return None if value is None else float(value)


def _optional_int(value: str | None) -> int | None:
    return None if value is None else int(value)
