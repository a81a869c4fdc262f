"""Submitting one dispatched job to the provider, in six steps:

    read      the job, if it is still dispatched at this attempt (else: not ours)
    check     its inputs from S3, checked, and the provider's request body built
    reserve   its estimated cost out of the batch's budget
    slot      a provider slot: at once if one is free, else the next to come free
    POST      the paid request, with webhook_url and webhook_secret for this attempt
              (callbacks off: without them, and the task is polled: `pipeline.polling`)
    record    the provider's task (or why there is none) in the ledger

The slot is taken last, with the request ready, so a slot coming free waits for no more
than the POST (see `pipeline.ledger.slots`). Idempotent on (job, attempt): a redelivered
submit message finds the job moved on and does nothing. Nothing here retries: trouble
that may pass (S3 or the provider unreachable, the provider at its limit) puts the job
back at the front of its line and cools the account down; the dispatcher takes it again
when the cool-down ends.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from dataclasses import dataclass

from pipeline import metrics
from pipeline.errors import (
    AccountProblem,
    AmbiguousSubmit,
    InputError,
    PermanentError,
    RateLimited,
    RetryableError,
)
from pipeline.images import ImageInfo, check_edit_inputs, inputs_digest
from pipeline.ledger.slots import MAX_WAIT_S
from pipeline.logcontext import add_to_job_context
from pipeline.models import JobRecord, JobRef, JobSpec
from pipeline.moves import back_in_line, backoff_s, end_job
from pipeline.polling import file_first_poll
from pipeline.provider import Submission, encode_body
from pipeline.runtime import Runtime
from pipeline.states import JobState
from pipeline.storage import S3Uri

log = logging.getLogger(__name__)

MAX_INPUT_BYTES = 40 * 1024 * 1024
# A job whose inputs could not be read this many times in a row fails.
MAX_INPUT_TROUBLES = 8
# A job waiting for a slot checks on itself this often.
SLOT_POLL_S = 1.0
_BEFORE_POST = (JobState.DISPATCHED,)
_CANCELLED = "cancelled before it was submitted"


@dataclass(frozen=True)
class Request:
    """A checked job's request body, encoded, and what its image is (for the cost
    estimate)."""

    body: bytes
    image: ImageInfo


@metrics.timed(metrics.SUBMIT_SECONDS)
def submit_job(
    rt: Runtime, ref: JobRef, attempt: int, *, stopping: Callable[[], bool] = lambda: False
) -> JobState | None:
    """Submit `attempt` of a dispatched job; return its new state (None: not ours).

    `stopping` says the worker is shutting down: a job still waiting for a slot then
    goes back to its line at once."""
    record = read(rt, ref, attempt)
    if record is None:
        return None
    if rt.ledger.batches.is_cancelled(ref.batch_id):
        return end_job(rt, ref, attempt, JobState.CANCELLED, _CANCELLED, from_states=_BEFORE_POST)
    try:
        request = check(rt, record)
    except InputError as error:
        return end_job(
            rt, ref, attempt, JobState.INVALID_INPUT, str(error), from_states=_BEFORE_POST
        )
    except RetryableError as error:
        return _input_trouble(rt, record, error)
    estimate = estimate_credits(rt, request.image)
    reserved = rt.ledger.batches.reserve_budget(ref.batch_id, estimate)
    if reserved is None:
        message = f"skipped: its ~{estimate:.2f} credits would take the batch over its budget"
        return end_job(rt, ref, attempt, JobState.SKIPPED_BUDGET, message, from_states=_BEFORE_POST)
    held = take_slot(rt, record, stopping)
    if held is not JobState.DISPATCHED:
        rt.ledger.batches.release_budget(ref.batch_id, reserved)
        return held
    return post_and_record(rt, record, request.body, estimate, reserved)


def read(rt: Runtime, ref: JobRef, attempt: int) -> JobRecord | None:
    """The job, if it is dispatched at `attempt` (a redelivered message finds it moved on)."""
    record = rt.ledger.jobs.get(ref)
    if record is None or record.attempt != attempt or record.state is not JobState.DISPATCHED:
        return None
    return record


def read_inputs(rt: Runtime, spec: JobSpec) -> tuple[bytes, bytes | None]:
    """The job's image and mask (None: the image's alpha is the mask), from S3."""
    image = rt.storage.read(S3Uri.parse(spec.image_uri), max_bytes=MAX_INPUT_BYTES)
    if spec.mask_uri is None:
        return image, None
    return image, rt.storage.read(S3Uri.parse(spec.mask_uri), max_bytes=MAX_INPUT_BYTES)


def check(rt: Runtime, record: JobRecord) -> Request:
    """Read and check the inputs, then build and encode the provider's request body.

    The pixels are decoded only if the inputs are not the very bytes that the intake
    already decoded in full (`JobSpec.checked_inputs`).
    """
    spec = record.spec
    image, mask = read_inputs(rt, spec)
    rt.sent_inputs.keep(record.ref, image, mask)
    unchanged = spec.checked_inputs is not None and spec.checked_inputs == inputs_digest(
        image, mask
    )
    info = check_edit_inputs(image, mask, full=not unchanged)
    body: dict[str, object] = spec.params.to_request()
    body["image"] = base64.b64encode(image).decode()
    if mask is not None:
        body["mask"] = base64.b64encode(mask).decode()
    if rt.settings.callbacks:  # else the task is polled (`pipeline.polling`)
        body["webhook_url"] = rt.callback_url(rt.signer.token(spec.ref, record.attempt))
        body["webhook_secret"] = rt.signer.webhook_secret(spec.ref, record.attempt)
    return Request(encode_body(body), info)


def estimate_credits(rt: Runtime, image: ImageInfo) -> float:
    """What a job should cost before the provider says: output megapixels x the price."""
    return image.megapixels * rt.settings.price_credits_per_mp


def take_slot(rt: Runtime, record: JobRecord, stopping: Callable[[], bool]) -> JobState | None:
    """Take a provider slot for the job: at once if one is free, else the next one handed
    to it. Returns `dispatched` once it holds one; `queued` if the worker is stopping,
    the account is paused or no slot came within `MAX_WAIT_S` (the job went back to the
    front of its line); None if the job moved on meanwhile."""
    ref, attempt = record.ref, record.attempt
    answer = rt.ledger.slots.take(ref, attempt)
    if answer != "wait":
        return JobState.DISPATCHED if answer == "go" else None
    give_up_at = rt.clock() + MAX_WAIT_S
    while not rt.ledger.slots.wait(ref, attempt, timeout_s=SLOT_POLL_S):
        if _state_at(rt, ref, attempt) is not JobState.DISPATCHED:
            return None
        if rt.ledger.slots.holds(ref, attempt, record.account):  # its wake-up was lost
            break
        reason = _why_give_up(rt, record.account, stopping, give_up_at)
        if reason and back_in_line(rt, ref, attempt, JobState.DISPATCHED, reason):
            return JobState.QUEUED
    return JobState.DISPATCHED


def _why_give_up(
    rt: Runtime, account: str, stopping: Callable[[], bool], give_up_at: float
) -> str | None:
    """Why a job waiting for a slot should go back to its line now, if it should."""
    if stopping():
        return "its worker is stopping; back in line"
    paused = rt.ledger.account(account).paused_reason()
    if paused:
        return f"provider account {account} is paused ({paused}); back in line"
    if rt.clock() >= give_up_at:
        return f"no provider slot came free within {MAX_WAIT_S:g} s; back in line"
    return None


def _state_at(rt: Runtime, ref: JobRef, attempt: int) -> JobState | None:
    """The job's state if it is still at `attempt` (else None: no longer ours)."""
    record = rt.ledger.jobs.get(ref)
    return record.state if record is not None and record.attempt == attempt else None


def post_and_record(
    rt: Runtime, record: JobRecord, body: bytes, estimate: float, reserved: float
) -> JobState | None:
    """Move the job, which holds its slot, to `submitting` (which claims its POST: a
    second task for the same attempt finds it taken), POST it and record what came of
    it; give back the budget `reserved` for it once its cost is recorded (kept if the
    POST was ambiguous: the task may exist and be billed)."""
    ref, attempt = record.ref, record.attempt
    begun = rt.ledger.jobs.transition(
        ref,
        from_states=[JobState.DISPATCHED],
        to_state=JobState.SUBMITTING,
        attempt=attempt,
        late_at=rt.clock() + rt.settings.deadlines.submit_late_s,
    )
    if not begun.applied:
        rt.ledger.batches.release_budget(ref.batch_id, reserved)
        return None
    try:
        submission = rt.providers[record.account].submit(body)
    except AmbiguousSubmit as error:
        return _record_ambiguous(rt, record, error)
    except (RetryableError, PermanentError) as error:
        rt.ledger.batches.release_budget(ref.batch_id, reserved)
        return _refused(rt, record, error)
    state = record_task(rt, record, submission, estimate)
    rt.ledger.batches.release_budget(ref.batch_id, reserved)
    return state


def _refused(rt: Runtime, record: JobRecord, error: Exception) -> JobState | None:
    """The provider took no task: wait and try again later, pause, or fail the job."""
    ref, attempt = record.ref, record.attempt
    metrics.provider_error(record.account, error)
    account = rt.ledger.account(record.account)
    if isinstance(error, AccountProblem):
        account.pause(str(error))
        log.error("provider account %s paused: %s", account.name, error)
    elif isinstance(error, RateLimited) and error.retry_after_s:
        account.cool_down(error.retry_after_s)
    elif isinstance(error, RetryableError):
        account.cool_down(backoff_s(account.provider_trouble()))
    else:
        failed = [JobState.SUBMITTING]
        return end_job(rt, ref, attempt, JobState.FAILED, str(error), from_states=failed)
    return back_in_line(rt, ref, attempt, JobState.SUBMITTING, str(error))


def record_task(
    rt: Runtime, record: JobRecord, submission: Submission, estimate: float
) -> JobState:
    """The provider took the job: its task, polling URL and cost, awaiting the result.

    With callbacks off its task is also filed to be polled `FIRST_POLL_S` from now; the
    sweep's deadline stays `callback_late_s`, for a task nothing polls."""
    rt.ledger.account(record.account).provider_fine()
    cost = submission.cost_credits if submission.cost_credits is not None else estimate
    metrics.credits_spent(record.account, cost)
    now = rt.clock()
    rt.ledger.jobs.transition(
        record.ref,
        from_states=[JobState.SUBMITTING],
        to_state=JobState.AWAITING_RESULT,
        attempt=record.attempt,
        fields={
            "provider_task_id": submission.task_id,
            "polling_url": submission.polling_url,
            "cost_credits": submission.cost_credits,
            "input_troubles": None,
            "submitted_at": now,
        },
        cost_delta=cost,
        late_at=now + rt.settings.deadlines.callback_late_s,
    )
    add_to_job_context(provider_task=submission.task_id)
    if not rt.settings.callbacks:
        file_first_poll(rt, record.ref, record.attempt)
    return JobState.AWAITING_RESULT


def _record_ambiguous(rt: Runtime, record: JobRecord, error: AmbiguousSubmit) -> JobState:
    """The task may exist and be billed: its budget reservation stays spent, its slot
    held, and a callback naming this attempt (its token does) is awaited until the
    ambiguity deadline."""
    log.warning("job %s attempt %d: ambiguous submit (%s)", record.ref, record.attempt, error)
    metrics.provider_error(record.account, error)
    rt.ledger.jobs.transition(
        record.ref,
        from_states=[JobState.SUBMITTING],
        to_state=JobState.AWAITING_RESULT,
        attempt=record.attempt,
        fields={"error": f"submit outcome unknown ({error}); awaiting its callback"},
        late_at=rt.clock() + rt.settings.deadlines.ambiguous_submit_s,
    )
    return JobState.AWAITING_RESULT


def _input_trouble(rt: Runtime, record: JobRecord, error: RetryableError) -> JobState | None:
    """Its inputs could not be read just now: back in line, or failed after many tries."""
    ref, attempt = record.ref, record.attempt
    troubles = record.input_troubles + 1
    if troubles >= MAX_INPUT_TROUBLES:
        message = f"could not read its inputs after {troubles} tries: {error}"
        return end_job(rt, ref, attempt, JobState.FAILED, message, from_states=_BEFORE_POST)
    rt.ledger.account(record.account).cool_down(backoff_s(troubles))
    moved = rt.ledger.jobs.transition(
        ref,
        from_states=_BEFORE_POST,
        to_state=JobState.QUEUED,
        attempt=attempt,
        fields={"error": str(error), "input_troubles": troubles},
    )
    return JobState.QUEUED if moved.applied else None
