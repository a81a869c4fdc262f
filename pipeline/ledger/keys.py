"""The ledger's keys in Redis. Every key starts with the ledger's prefix (`fp:`):

    job:<batch>:<job>        hash: spec (JSON), state, attempt, account, updated_at,
                             provider_task_id, polling_url, cost_credits, error, seed,
                             input_troubles, submitted_at
    batch:<batch>            hash: created_at, source, total, priority, n:<state> counters,
                             cost_credits, budget_credits, reserved_credits,
                             cursor:<account>, cancelled; notify (URL), notify_each
                             ("job": a rule's batch), notified (finish notifications queued)
    batch:<batch>:jobs       list: the batch's job ids in manifest order
    batch:<batch>:line:<account>       list: the batch's job ids on that account, in
                             manifest order (the account's dispatcher walks it with the
                             batch's cursor for the account)
    batch:<batch>:requeued:<account>   list: job ids put back in line (dispatched first)
    batch:<batch>:failed     sorted set: the batch's failed job ids, by when they failed
    batch:<batch>:ends       hash: minute (epoch seconds // 60) -> jobs that ended in it
    batches                  sorted set: batch ids by creation time
    pool:<account>:…         one provider account's slot pool (`PoolKeys`):
        ready                sorted set: batches with jobs to dispatch, by pass (fairness)
        leases               hash: job key -> attempt, one per provider slot in use
        picked               set: keys of the dispatched jobs (handed to a submit task,
                             no slot yet)
        waiting              list: "<attempt>|<job key>" of dispatched jobs whose request
                             is ready, waiting for a slot, oldest first
        paused               string: why the account is paused (402, refused key)
        cooldown             string with a TTL: the provider asked to wait (429)
        wakeup               string with a TTL: a dispatch is scheduled for the cooldown's end
        trouble              counter with a TTL: failures in a row to reach the provider
        spend                hash: UTC day (YYYYMMDD) -> credits recorded as spent
    go:<batch>:<job>:<attempt>   list: a waiting job's submit task blocks on it until a
                             slot is handed to it
    awaiting                 sorted set: job keys in flight, scored by when they are late
                             (the reconcile sweep reads it)
    poll                     sorted set: "<attempt>|<job key>" of tasks to poll, scored by
                             when (callbacks off; see `pipeline.polling`)
    callback:<batch>:<job>:<attempt>   set by the first final callback of an attempt
    results-stale            set: batches whose results.jsonl is behind the ledger
    outbox                   stream: work for the workers (see `pipeline.ledger.outbox`)
    notify:<webhook id>      hash: one outgoing notification until it is sent or given up
    notify-due               sorted set: webhook ids by when their next attempt is due
                             (see `pipeline.ledger.notifications`)
    seen:…, mask-wait:…, listing:…   triggered jobs' event marks, masks' waiting jobs
                             and listing cursors (see `pipeline.ledger.triggers`)

Batch ids never contain ':' (see `pipeline.batches.new_batch_id`); job ids may, so a job
key is split at its first ':' after the prefix. The scripts derive keys from the same
schema (`lua/common.lua`), so the ledger assumes one Redis, not a cluster.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.models import JobRef

KEY_PREFIX = "fp:"


@dataclass(frozen=True)
class PoolKeys:
    """The keys of one account's slot pool."""

    ready: str
    leases: str
    picked: str
    waiting: str
    paused: str
    cooldown: str
    wakeup: str
    trouble: str
    spend: str

    @classmethod
    def under(cls, base: str) -> PoolKeys:
        return cls(**{name: f"{base}{name}" for name in cls.__dataclass_fields__})


class Keys:
    """The key schema under one prefix."""

    def __init__(self, prefix: str = KEY_PREFIX) -> None:
        self.prefix = prefix
        self.batches = f"{prefix}batches"
        self.awaiting = f"{prefix}awaiting"
        self.poll = f"{prefix}poll"
        self.results_stale = f"{prefix}results-stale"
        self.outbox = f"{prefix}outbox"
        self.notify_due = f"{prefix}notify-due"

    def __repr__(self) -> str:
        return f"Keys({self.prefix!r})"

    def job(self, ref: JobRef) -> str:
        return f"{self.prefix}job:{ref.batch_id}:{ref.job_id}"

    def ref(self, job_key: str) -> JobRef:
        """The job a job key names."""
        batch_id, job_id = job_key.removeprefix(f"{self.prefix}job:").split(":", 1)
        return JobRef(batch_id, job_id)

    def go(self, ref: JobRef, attempt: int) -> str:
        return f"{self.prefix}go:{ref.batch_id}:{ref.job_id}:{attempt}"

    def batch(self, batch_id: str) -> str:
        return f"{self.prefix}batch:{batch_id}"

    def batch_jobs(self, batch_id: str) -> str:
        return f"{self.prefix}batch:{batch_id}:jobs"

    def batch_failed(self, batch_id: str) -> str:
        return f"{self.prefix}batch:{batch_id}:failed"

    def batch_ends(self, batch_id: str) -> str:
        return f"{self.prefix}batch:{batch_id}:ends"

    def batch_line(self, batch_id: str, account: str) -> str:
        return f"{self.prefix}batch:{batch_id}:line:{account}"

    def batch_requeued(self, batch_id: str, account: str) -> str:
        return f"{self.prefix}batch:{batch_id}:requeued:{account}"

    def notification(self, webhook_id: str) -> str:
        return f"{self.prefix}notify:{webhook_id}"

    def pool(self, account: str) -> PoolKeys:
        return PoolKeys.under(f"{self.prefix}pool:{account}:")
