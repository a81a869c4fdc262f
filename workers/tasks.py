"""The Celery tasks: decode ids, call one `pipeline` function, map its errors.

Arguments are JSON ids; every task is idempotent on (job, attempt), so a redelivered
message changes nothing twice. Every task ends by filling the provider slots that are
free (`fill_slots`): a slot freed by a collect is leased to the next job at once, in
the same task, so the dispatcher is driven by events, not by a polling loop.

Once every slot is in use, the next few jobs are staged, each by a task that then holds
it: it reads the inputs, builds the request and waits on Redis; the receiver's script
that frees a slot hands it to the oldest staged job and wakes its task, which POSTs at
once. A job is staged only by a task that takes it at once, a submit task that has
POSTed, never by a message that would wait for a free worker process while the job
stands first in line for a slot; and not while submit messages wait for a process (the
first wave of a batch), whose jobs hold slots already. For the same reason a task that
finds a slot leased with no staged job to take it (a submit task that has POSTed, the
dispatch task the receiver queues when it frees slots) submits that job itself. A
submit task goes on taking jobs for `CHAIN_STAGED_FOR_S` at most. Collects take no job:
they are what the 1 MP callback-to-stored latency waits for. (A dispatch task that
staged as well, or a collect that went on to submit a leased job, kept one more worker
process busy with submits just as callbacks bunch up: 1 MP callback-to-stored p99 went
over 250 ms in three runs of three either way.) Waiting is short and bounded: longer
waits belong to the reconcile sweep.
"""

from __future__ import annotations

import functools
import logging
import time

from celery import Celery, Task, current_app, shared_task
from celery.worker import state as worker_state

from pipeline import jobs, reports
from pipeline.errors import RetryableError
from pipeline.models import JobRef, JobState
from pipeline.runtime import Runtime
from workers.app import (
    TASK_COLLECT,
    TASK_DISPATCH,
    TASK_RECONCILE,
    TASK_SUBMIT,
    request_dispatch,
)
from workers.context import runtime
from workers.messages import BrokerOutbox

log = logging.getLogger(__name__)

MAX_RETRIES = 8
MAX_COUNTDOWN_S = 30.0
NOT_READY_COUNTDOWN_S = 0.5
NOT_READY_MAX_RETRIES = 120
# A submit task goes on to stage the next job itself for this long at most (each staged
# job waits up to `jobs.STAGED_WAIT_MAX_S`), so a warm shutdown is not held up for long
# and the task stays far inside its time limits; after that the next job gets a message.
CHAIN_STAGED_FOR_S = 20.0
# No job is staged while this many messages wait in the submit queue: the worker
# processes are busy enough.
BACKLOG_MESSAGES = 64


def backoff_s(retries: int) -> float:
    """Exponential backoff for retry number `retries`, capped."""
    return float(min(MAX_COUNTDOWN_S, 2**retries))


# Submit and dispatch messages are acknowledged as their tasks start, unlike the others:
# a submit task (and a dispatch task, which goes on as one) may take job after job and
# wait for slots for a while, and kombu's Redis transport crashes the worker when a task
# acknowledges its message after the broker connection dropped (a Redis restart; the
# chaos suite hit it with a dispatch task 17 s into its chain). Nothing is lost: a job
# whose task dies with its worker is put back in line by the reconcile sweep
# (`dispatch_late_s`), one that died mid-POST is treated as an ambiguous submit, and a
# slot a lost dispatch message would have filled is filled by the next task to end.
@shared_task(name=TASK_SUBMIT, acks_late=False)
def submit(batch_id: str, job_id: str, attempt: int) -> None:
    _submit(JobRef(batch_id, job_id), attempt)


@shared_task(name=TASK_COLLECT, bind=True, max_retries=MAX_RETRIES)
def collect(self: Task, batch_id: str, job_id: str, attempt: int) -> None:
    # It fills free slots but submits no job itself (see the module's docstring).
    ref = JobRef(batch_id, job_id)
    try:
        state = jobs.collect_job(runtime(), ref, attempt, slot_freed=fill_slots)
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
    finally:
        fill_slots()
    _after(ref, state)


@shared_task(name=TASK_DISPATCH, acks_late=False)
def dispatch() -> None:
    # It submits the first job it leases, then goes on as a submit task that has POSTed
    # (for `CHAIN_STAGED_FOR_S` at most); the other jobs it leases get submit messages.
    taken = fill_slots(take_leased=True)
    if taken is not None:
        _submit(*taken)


@shared_task(name=TASK_RECONCILE)
def reconcile() -> None:
    rt = runtime()
    reports.refresh_stale_results(rt)
    plan = jobs.plan_reconcile(rt)
    for ref, attempt in plan.collect:
        collect.delay(ref.batch_id, ref.job_id, attempt)
    if plan.collect or plan.requeued or plan.ambiguous:
        log.info(
            "reconcile: polling %d late jobs, %d back in line, %d submits left ambiguous",
            len(plan.collect),
            len(plan.requeued),
            len(plan.ambiguous),
        )
    fill_slots()


def fill_slots(
    *, take_leased: bool = False, take_staged: bool = False
) -> tuple[JobRef, int] | None:
    """Lease every free provider slot and send each leased job a submit message, but
    return one for the caller to submit itself: the first leased job if `take_leased`
    (it holds its lease), else, if `take_staged`, the next job staged now (it waits for
    a slot in `jobs.submit_job`). Only a caller that takes a staged job stages one, and
    only while no submit message waits for a worker process.

    While the dispatcher cools down (a 429, an unreachable provider) one delayed
    dispatch is scheduled for when it ends.
    """
    rt = runtime()
    leased = jobs.dispatch(rt)
    to_send = leased
    taken: tuple[JobRef, int] | None = None
    if take_leased and leased:
        taken, to_send = leased[0], leased[1:]
    elif take_staged and not _submits_waiting(rt):
        taken = next(iter(jobs.stage(rt, max_new=1)), None)
    if to_send:
        outbox = _outbox(current_app)
        messages = [outbox.submit(ref, attempt) for ref, attempt in to_send]
        rt.ledger.redis.lpush(outbox.submit_queue, *messages)  # in order: BRPOP takes the first
    if not leased:
        wait_s = rt.ledger.cooldown_left_s()
        if wait_s > 0 and rt.ledger.claim_wakeup(wait_s):
            request_dispatch(current_app, countdown_s=wait_s)
    return taken


def _submits_waiting(rt: Runtime) -> bool:
    """Whether submit messages wait for a worker process (the first wave of a batch):
    their jobs hold slots already, so a process had better take one than wait on a
    staged job. A backlog of `BACKLOG_MESSAGES` or more messages counts as waiting
    without being read through."""
    queued = rt.ledger.redis.lrange(BrokerOutbox.submit_queue, 0, BACKLOG_MESSAGES - 1)
    return len(queued) == BACKLOG_MESSAGES or any(map(BrokerOutbox.is_submit, queued))


@functools.cache
def _outbox(app: Celery) -> BrokerOutbox:
    """Ready-made messages for `app`'s tasks, built once per process."""
    return BrokerOutbox(app)


def _submit(ref: JobRef, attempt: int) -> None:
    """Submit the job, then each job this task takes next (see `CHAIN_STAGED_FOR_S`)."""
    chain_until = time.monotonic() + CHAIN_STAGED_FOR_S
    job: tuple[JobRef, int] | None = (ref, attempt)
    while job is not None:
        ref, attempt = job
        try:
            state = jobs.submit_job(runtime(), ref, attempt)
            _after(ref, state)
        except BaseException:
            fill_slots()
            raise
        go_on = time.monotonic() < chain_until and not worker_state.should_stop
        job = fill_slots(take_leased=go_on, take_staged=go_on)


def _after(ref: JobRef, state: JobState | None) -> None:
    """Keep the batch's results manifest current as its jobs end."""
    if state is not None and state.is_terminal:
        reports.job_ended(runtime(), ref.batch_id)
