"""The Celery tasks: decode ids, call one `pipeline` function, map its errors.

Arguments are JSON ids; every task is idempotent on (job, attempt), so a redelivered
message changes nothing twice. Waiting is short and bounded: longer waits belong to
the reconcile sweep, not to countdowns parked in Redis.
"""

from __future__ import annotations

import logging

from celery import Task, shared_task

from pipeline import jobs, reports
from pipeline.errors import RateLimited, RetryableError
from pipeline.models import JobRef, JobState
from workers.app import TASK_COLLECT, TASK_RECONCILE, TASK_SUBMIT
from workers.context import runtime

log = logging.getLogger(__name__)

MAX_RETRIES = 8
MAX_COUNTDOWN_S = 30.0
NOT_READY_COUNTDOWN_S = 0.5
NOT_READY_MAX_RETRIES = 120


def backoff_s(retries: int) -> float:
    """Exponential backoff for retry number `retries`, capped."""
    return float(min(MAX_COUNTDOWN_S, 2**retries))


@shared_task(name=TASK_SUBMIT, bind=True, max_retries=MAX_RETRIES)
def submit(self: Task, batch_id: str, job_id: str) -> None:
    ref = JobRef(batch_id, job_id)
    try:
        state = jobs.submit_job(runtime(), ref)
    except RateLimited as error:
        wait_s = (
            error.retry_after_s
            if error.retry_after_s is not None
            else backoff_s(self.request.retries)
        )
        raise self.retry(countdown=min(wait_s, MAX_COUNTDOWN_S), max_retries=None) from None
    except RetryableError as error:
        if self.request.retries >= MAX_RETRIES:
            jobs.give_up(runtime(), ref, f"provider unreachable: {error}")
            return
        raise self.retry(countdown=backoff_s(self.request.retries)) from None
    _after(ref, state)


@shared_task(name=TASK_COLLECT, bind=True, max_retries=MAX_RETRIES)
def collect(self: Task, batch_id: str, job_id: str, attempt: int) -> None:
    ref = JobRef(batch_id, job_id)
    try:
        state = jobs.collect_job(runtime(), ref, attempt)
    except jobs.NotReadyYet:
        if self.request.retries >= NOT_READY_MAX_RETRIES:
            # The submit task never finished its bookkeeping (it died mid-submit):
            # stop polling here; the job's fate is the reconcile sweep's to decide.
            log.warning("collect %s attempt %d: submit never recorded; giving up", ref, attempt)
            return
        raise self.retry(countdown=NOT_READY_COUNTDOWN_S, max_retries=None) from None
    except RetryableError:
        if self.request.retries >= MAX_RETRIES:
            jobs.release_collect(runtime(), ref, attempt)  # the reconcile sweep takes over
            return
        raise self.retry(countdown=backoff_s(self.request.retries)) from None
    _after(ref, state)


@shared_task(name=TASK_RECONCILE)
def reconcile() -> None:
    reports.refresh_stale_results(runtime())
    plan = jobs.plan_reconcile(runtime())
    for ref, attempt in plan.collect:
        collect.delay(ref.batch_id, ref.job_id, attempt)
    for ref in plan.resubmit:
        submit.delay(ref.batch_id, ref.job_id)
    if plan.collect or plan.resubmit:
        log.info(
            "reconcile: polling %d late jobs, resubmitting %d",
            len(plan.collect),
            len(plan.resubmit),
        )


def _after(ref: JobRef, state: JobState | None) -> None:
    """Keep the batch's results manifest current as its jobs end."""
    if state is not None and state.is_terminal:
        reports.job_ended(runtime(), ref.batch_id)
