"""The Celery tasks: decode ids, call one `pipeline` function, map its errors.

Arguments are JSON ids; every task is idempotent on (job, attempt), so a redelivered
message changes nothing twice. Submits and collects are queued by the ledger's outbox
(see `workers.relay`); the dispatch task only runs when a cool-down ends; the reconcile
sweep runs on beat's schedule.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

from celery import Task, shared_task
from celery.signals import task_postrun, task_prerun

from pipeline import reports
from pipeline.collect import collect_job, release_collect
from pipeline.errors import NotReadyYet, RetryableError, StorageUnavailable
from pipeline.logcontext import job_context
from pipeline.models import JobRef
from pipeline.notify import deliver
from pipeline.reconcile import sweep
from pipeline.runtime import Runtime
from pipeline.states import JobState
from pipeline.submit import submit_job
from workers.app import TASK_COLLECT, TASK_DISPATCH, TASK_NOTIFY, TASK_RECONCILE, TASK_SUBMIT
from workers.context import runtime, stopping

log = logging.getLogger(__name__)

MAX_RETRIES = 8
MAX_COUNTDOWN_S = 30.0
NOT_READY_COUNTDOWN_S = 0.5
NOT_READY_MAX_RETRIES = 120


def backoff_s(retries: int) -> float:
    """Exponential backoff for retry number `retries`, capped."""
    return float(min(MAX_COUNTDOWN_S, 2**retries))


# A submit task may wait minutes for a provider slot. Its message is acknowledged as it
# starts: kombu's Redis transport ends a worker whose broker connection drops while it
# holds unacknowledged messages, and the ledger, not the message, is what keeps the job
# (a job whose task died is put back in line by the reconcile sweep).
@shared_task(name=TASK_SUBMIT, acks_late=False)
def submit(batch_id: str, job_id: str, attempt: int) -> None:
    rt = runtime()
    ref = JobRef(batch_id, job_id)
    _after(rt, ref, submit_job(rt, ref, attempt, stopping=stopping.is_set))
    for account in rt.ledger.pools:
        _wake_after_cooldown(rt, account)


@shared_task(name=TASK_COLLECT, bind=True, max_retries=MAX_RETRIES)
def collect(self: Task, batch_id: str, job_id: str, attempt: int) -> None:
    rt = runtime()
    ref = JobRef(batch_id, job_id)
    try:
        state = collect_job(rt, ref, attempt)
    except NotReadyYet:
        if self.request.retries >= NOT_READY_MAX_RETRIES:
            # The submit never finished its bookkeeping (it died mid-submit): the job's
            # fate is the reconcile sweep's to decide.
            log.warning("collect %s attempt %d: submit never recorded; giving up", ref, attempt)
            return
        raise self.retry(countdown=NOT_READY_COUNTDOWN_S, max_retries=None) from None
    except RetryableError:
        if self.request.retries >= MAX_RETRIES:
            release_collect(rt, ref, attempt)  # the reconcile sweep takes over
            return
        raise self.retry(countdown=backoff_s(self.request.retries)) from None
    _after(rt, ref, state)


# The first attempt of an outgoing notification; later ones are the reconcile sweep's.
# Only rewriting the batch's results manifest first (S3) is retried here, briefly; on
# the last try the notification goes without it.
@shared_task(name=TASK_NOTIFY, bind=True, max_retries=MAX_RETRIES)
def notify(self: Task, batch_id: str, job_id: str, number: int) -> None:
    last_try = self.request.retries >= MAX_RETRIES
    try:
        deliver(runtime(), batch_id, job_id, number, results_may_lag=last_try)
    except StorageUnavailable:
        raise self.retry(countdown=backoff_s(self.request.retries)) from None


@shared_task(name=TASK_DISPATCH)
def dispatch(account: str | None = None) -> None:
    runtime().ledger.slots.dispatch(account)


@shared_task(name=TASK_RECONCILE)
def reconcile() -> None:
    rt = runtime()
    reports.refresh_stale_results(rt)
    report = sweep(rt)
    if report.acted:
        log.info(
            "reconcile: polling %d late jobs, %d back in line, %d submits left ambiguous, "
            "%d dispatched",
            len(report.polled),
            len(report.requeued),
            len(report.ambiguous),
            report.dispatched,
        )


# The job contexts of the submit or collect running in each task thread.
_job_logs = threading.local()


@task_prerun.connect
def _enter_job_context(
    task_id: str, task: Task, args: Sequence[Any], kwargs: dict[str, Any], **_: object
) -> None:
    """From before a submit or a collect runs until after Celery logs how it ended, every
    line logged in its thread names its job (`pipeline.logcontext`) and its Celery task."""
    if task.name not in (TASK_SUBMIT, TASK_COLLECT):
        return
    ids = {**dict(zip(("batch_id", "job_id", "attempt"), args, strict=False)), **kwargs}
    context = job_context(
        batch=ids.get("batch_id"),
        job=ids.get("job_id"),
        attempt=ids.get("attempt"),
        celery_task=task_id,
    )
    context.__enter__()
    _open_contexts().append(context)


@task_postrun.connect
def _leave_job_context(task: Task, **_: object) -> None:
    if task.name in (TASK_SUBMIT, TASK_COLLECT) and (contexts := _open_contexts()):
        contexts.pop().__exit__(None, None, None)


def _open_contexts() -> list[AbstractContextManager[None]]:
    if not hasattr(_job_logs, "open"):
        _job_logs.open = []
    contexts: list[AbstractContextManager[None]] = _job_logs.open
    return contexts


def _after(rt: Runtime, ref: JobRef, state: JobState | None) -> None:
    """Keep the batch's results manifest current as its jobs end."""
    if state is not None and state.is_terminal:
        reports.job_ended(rt, ref.batch_id)


def _wake_after_cooldown(rt: Runtime, account_name: str) -> None:
    """While an account cools down (a 429, the provider unreachable) nothing is
    dispatched to it; one dispatch task is scheduled for when the cool-down ends."""
    account = rt.ledger.account(account_name)
    wait_s = account.cooldown_left_s()
    if wait_s > 0 and account.claim_wakeup(wait_s):
        dispatch.apply_async(args=(account_name,), countdown=wait_s)
