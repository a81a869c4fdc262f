"""Outgoing notifications: a POST to the operator's URL when a batch finishes (or, for a
rule's rolling batch, as each job ends), signed as Standard Webhooks has it.

    fillpipe submit MANIFEST --notify URL     `batch.finished`, once all jobs ended
    notify = "URL" in a trigger rule          `job.finished`, as each job of the rule ends

The ledger's `transition` script queues a `notify` outbox entry in the same step as the
state change that ends the job (or the batch), so a notification is queued exactly once
and never for an unfinished batch. The relay publishes it as the `fillpipe.notify` task,
which calls `deliver`: it builds the body from the ledger, files the delivery and makes
the first attempt. A failed attempt (not 2xx, no connection, a timeout) is made again on
the Standard Webhooks schedule (`RETRY_SCHEDULE_S`: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h,
10 h) by the reconcile sweep (`retry_due`), never by a long Celery countdown; after the
last attempt the delivery is given up and logged. Every attempt sends the same
`webhook-id` (stable per event, so receivers deduplicate by it) and the same body, with a
fresh `webhook-timestamp` and `webhook-signature` (HMAC-SHA256 of id.timestamp.body under
`FILLPIPE_NOTIFY_SECRET`, by the `standardwebhooks` package).

The URL is the operator's own configuration, so private and loopback addresses are
allowed; redirects are not followed.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import httpx
from standardwebhooks import Webhook

from pipeline.batches import batch_prefix
from pipeline.errors import StorageUnavailable
from pipeline.ledger.notifications import PendingDelivery
from pipeline.models import JobRef
from pipeline.notify_target import shown_url
from pipeline.reports import result_row, write_results
from pipeline.runtime import Runtime
from pipeline.secret import Secret
from pipeline.states import JobState

log = logging.getLogger(__name__)

# After the first attempt fails, the next ones are this long after the one before.
RETRY_SCHEDULE_S = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
CONNECT_TIMEOUT_S = 5.0
# Each read or write after connecting; the answer's body is never read.
IO_TIMEOUT_S = 10.0
# An attempt under way is not made again by a sweep before this (well past the timeouts).
ATTEMPT_LEASE_S = 120.0
# A delivery is kept at most this long: past the whole schedule.
KEEP_S = int(sum(RETRY_SCHEDULE_S)) + 24 * 3600
# One sweep stops claiming due deliveries after this long (the next sweep goes on).
RETRY_BUDGET_S = 30.0
USER_AGENT = "fillpipe-notify"
# A batch.finished's counts: every state a job ends in, in the order of `JobState`.
FINISHED_STATES = [state for state in JobState if state.is_terminal]


@dataclass(frozen=True)
class Message:
    """One notification: its webhook id (the same on every attempt) and JSON body."""

    webhook_id: str
    body: str


@dataclass(frozen=True)
class RetryReport:
    """What one `retry_due` did."""

    sent: int = 0
    failed: int = 0
    given_up: int = 0


def batch_webhook_id(batch_id: str, finishes: int) -> str:
    """`msg_<batch>`, or `msg_<batch>:<n>` for its n-th finish after retrying jobs."""
    return f"msg_{batch_id}" if finishes <= 1 else f"msg_{batch_id}:{finishes}"


def job_webhook_id(ref: JobRef, attempt: int) -> str:
    """`msg_<batch>:<job>:<attempt>`, the job id percent-encoded (header-safe)."""
    return f"msg_{ref.batch_id}:{quote(ref.job_id, safe='-._~')}:{attempt}"


def batch_message(rt: Runtime, batch_id: str, finishes: int) -> Message | None:
    """`batch.finished` for the batch; None when it is not finished (jobs were retried
    since: its next finish notifies)."""
    summary = rt.ledger.batches.summary(batch_id)
    if summary is None or not summary.done:
        return None
    data = {
        "batch": batch_id,
        "counts": {state.value: summary.counts.get(state, 0) for state in FINISHED_STATES},
        "total": summary.total,
        "cost_credits": round(summary.cost_credits, 6),
        "results": batch_prefix(rt, batch_id) + "results.jsonl",
        "source": summary.source,
    }
    return Message(batch_webhook_id(batch_id, finishes), _body(rt, "batch.finished", data))


def job_message(rt: Runtime, ref: JobRef, attempt: int) -> Message | None:
    """`job.finished` for the job's attempt; None when the job has moved on since."""
    record = rt.ledger.jobs.get(ref)
    if record is None or not record.state.is_terminal or record.attempt != attempt:
        return None
    row = result_row(record)
    data = {
        "batch": ref.batch_id,
        "job": ref.job_id,
        "state": row["state"],
        "attempt": attempt,
        "image": row["image"],
        "output": row["output"],
        "error": row["error"],
        "cost_credits": row["cost_credits"],
        "rule": row["rule"],
    }
    return Message(job_webhook_id(ref, attempt), _body(rt, "job.finished", data))


def _body(rt: Runtime, event_type: str, data: dict[str, Any]) -> str:
    moment = datetime.fromtimestamp(rt.clock(), tz=UTC)
    timestamp = moment.isoformat(timespec="seconds").replace("+00:00", "Z")
    return json.dumps(
        {"type": event_type, "timestamp": timestamp, "data": data}, ensure_ascii=False
    )


def deliver(
    rt: Runtime, batch_id: str, job_id: str, number: int, *, results_may_lag: bool = False
) -> bool | None:
    """The first attempt of the notification a `notify` outbox entry names: a job's
    (`number` its attempt) or, with `job_id` "", a batch's (`number` how many times it
    has finished). Returns whether it was sent (a failed one is filed for `retry_due`);
    None when there was nothing to send: the batch notifies nowhere, it or the job has
    moved on since, or the entry was handled before (published twice).

    A batch's results manifest is rewritten first, since the notification names it;
    `StorageUnavailable` if that fails, unless `results_may_lag` (the caller has tried
    long enough): then it is left for the sweep to rewrite and the notification goes.
    """
    store = rt.ledger.notifications
    target = store.target(batch_id)
    if target is None or (not job_id and target.finishes != number):
        return None
    if job_id:
        message = job_message(rt, JobRef(batch_id, job_id), number)
    else:
        message = batch_message(rt, batch_id, number)
    if message is None or store.known(message.webhook_id):
        return None
    if not job_id:
        _write_results(rt, batch_id, may_lag=results_may_lag)
    filed = store.file(
        message.webhook_id, target.url, message.body, lease_s=ATTEMPT_LEASE_S, keep_s=KEEP_S
    )
    if not filed:
        return None
    delivery = PendingDelivery(message.webhook_id, target.url, message.body, attempts=0)
    return _attempt(rt, delivery) == "sent"


def _write_results(rt: Runtime, batch_id: str, *, may_lag: bool) -> None:
    try:
        write_results(rt, batch_id)
    except StorageUnavailable:
        if not may_lag:
            raise
        log.warning("batch %s: results manifest not rewritten; notifying anyway", batch_id)
        rt.ledger.batches.mark_results_stale(batch_id)


def retry_due(rt: Runtime) -> RetryReport:
    """Make the next attempt of each delivery that is due, one claimed at a time (so a
    sweep running at once never sends the same one), for up to `RETRY_BUDGET_S`."""
    outcomes = {"sent": 0, "failed": 0, "given_up": 0}
    started = time.monotonic()
    while time.monotonic() - started < RETRY_BUDGET_S:
        claimed = rt.ledger.notifications.claim_due(limit=1, lease_s=ATTEMPT_LEASE_S)
        if not claimed:
            break
        outcomes[_attempt(rt, claimed[0])] += 1
    return RetryReport(**outcomes)


def _attempt(rt: Runtime, delivery: PendingDelivery) -> str:
    """One attempt, its outcome recorded: "sent", "failed" (due again on the schedule)
    or "given_up" (that was the last one)."""
    store = rt.ledger.notifications
    failure = send(rt.settings.notify_secret, delivery)
    made = delivery.attempts + 1
    where = shown_url(delivery.url)
    if failure is None:
        store.sent(delivery.webhook_id)
        log.info("notification %s sent to %s (attempt %d)", delivery.webhook_id, where, made)
        return "sent"
    if made > len(RETRY_SCHEDULE_S):
        store.drop(delivery.webhook_id)
        log.error(
            "notification %s to %s: %s; gave up after %d attempts",
            delivery.webhook_id,
            where,
            failure,
            made,
        )
        return "given_up"
    wait_s = RETRY_SCHEDULE_S[made - 1]
    store.retry_at(delivery.webhook_id, attempts=made, at=rt.clock() + wait_s)
    log.warning(
        "notification %s to %s: %s; attempt %d of %d in %g s",
        delivery.webhook_id,
        where,
        failure,
        made + 1,
        len(RETRY_SCHEDULE_S) + 1,
        wait_s,
    )
    return "failed"


def send(secret: Secret | None, delivery: PendingDelivery) -> str | None:
    """POST the delivery, signed now; None on a 2xx answer, else what went wrong (no
    answer, a timeout, another status). The answer's body is not read."""
    if secret is None:
        return "FILLPIPE_NOTIFY_SECRET is not set in this worker"
    now = time.time()  # the wall clock: receivers check the timestamp against theirs
    signature = Webhook(secret.reveal()).sign(
        delivery.webhook_id, datetime.fromtimestamp(now, tz=UTC), delivery.body
    )
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": delivery.webhook_id,
        "webhook-timestamp": str(int(now)),
        "webhook-signature": signature,
    }
    body = delivery.body.encode()
    try:
        with _client().stream("POST", delivery.url, content=body, headers=headers) as answer:
            status = answer.status_code
    except httpx.HTTPError as error:
        return f"no answer ({type(error).__name__}: {error})"
    return None if 200 <= status < 300 else f"answered {status}"


_client_lock = threading.Lock()
_http: httpx.Client | None = None


def _client() -> httpx.Client:
    """The process's one client for notifications, made on first use."""
    global _http
    with _client_lock:
        if _http is None:
            _http = httpx.Client(
                timeout=httpx.Timeout(IO_TIMEOUT_S, connect=CONNECT_TIMEOUT_S),
                follow_redirects=False,
            )
        return _http
