"""The life of one job: submit it, collect its result (callbacks: `pipeline.recorder`).

Each function is idempotent on (job, attempt): it reads the ledger, acts only when the
job is where it expects, and changes state through one atomic transition. Celery tasks
and the receiver call these; what to enqueue next is returned, never done here.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pipeline.delivery import ExpiredResultUrl
from pipeline.errors import (
    AccountProblem,
    AmbiguousSubmit,
    InputError,
    PermanentError,
    ProviderUnavailable,
    RateLimited,
    ResultUnavailable,
    RetryableError,
    UnsafeResult,
)
from pipeline.images import ImageInfo, check_edit_inputs, check_result, inputs_digest
from pipeline.models import CONTENT_TYPES, JobRecord, JobRef, JobState
from pipeline.provider import TaskResult, TaskStatus
from pipeline.runtime import Runtime
from pipeline.storage import PutOutcome, S3Uri

log = logging.getLogger(__name__)

MAX_INPUT_BYTES = 40 * 1024 * 1024
# A job whose inputs could not be read this many times in a row fails.
MAX_INPUT_TROUBLES = 8
# Backoff of the whole account after the provider could not be reached: 2**n s, capped.
MAX_COOLDOWN_S = 60.0
# A staged job's submit task checks on its job this often while it waits for a slot,
# and gives the job back to its line after waiting this long (or half the dispatch
# deadline, if shorter).
STAGED_POLL_S = 1.0
STAGED_WAIT_MAX_S = 30.0
TAG_BATCH, TAG_JOB, TAG_FINETUNE = "fillpipe-batch", "fillpipe-job", "fillpipe-finetune"
_ACTIVE = (JobState.SUBMITTING, JobState.AWAITING_RESULT, JobState.COLLECTING)
_FORMAT_TYPES = {"JPEG": CONTENT_TYPES["jpeg"], "PNG": CONTENT_TYPES["png"], "WEBP": "image/webp"}
_UNCHARGED = (TaskStatus.REQUEST_MODERATED, TaskStatus.CONTENT_MODERATED)
_CANCELLED = "cancelled before it was submitted"


class NotReadyYet(RetryableError):
    """The callback beat the submit task's bookkeeping; collect again shortly."""


class ResultLost(ResultUnavailable):
    """The provider no longer has a finished task's result (unknown task, expired URL)."""


# -- dispatch --------------------------------------------------------------------------


def dispatch(rt: Runtime) -> list[tuple[JobRef, int]]:
    """Lease every free provider slot, to staged jobs first, then to the next queued
    jobs; return the queued ones with their attempts, each to be sent to a submit task
    (the staged ones' submit tasks are waiting already)."""
    return rt.ledger.dispatch(
        capacity=rt.settings.provider_slots, deadline_s=rt.settings.deadlines.dispatch_late_s
    )


def stage(rt: Runtime, *, max_new: int | None = None) -> list[tuple[JobRef, int]]:
    """Once every slot is in use, stage the next jobs (`STAGED_SUBMITS` in all, at most
    `max_new` of them now); return them with their attempts, each for a submit task,
    which reads its inputs and builds its request, then waits for the next free slot."""
    if rt.settings.staged_submits == 0:
        return []
    return rt.ledger.stage(
        capacity=rt.settings.provider_slots,
        depth=rt.settings.staged_submits,
        deadline_s=rt.settings.deadlines.dispatch_late_s,
        max_new=max_new,
    )


# -- submit ----------------------------------------------------------------------------


def submit_job(rt: Runtime, ref: JobRef, attempt: int) -> JobState | None:
    """Submit a dispatched or staged job to the provider; return its new state (None:
    not ours). A staged job's inputs are read first, then it waits for a free slot.

    Trouble that may pass (S3 or the provider unreachable, the provider at its limit)
    puts the job back at the front of its line and cools the dispatcher down; a 402 or
    a refused key pauses the account. Nothing here retries: the dispatcher does.
    """
    record = rt.ledger.get(ref)
    if record is None or record.attempt != attempt:
        return None
    staged = record.state is JobState.STAGED
    if not staged and record.state is not JobState.DISPATCHED:
        return None
    if not staged and rt.ledger.is_cancelled(ref.batch_id):
        return _finish(rt, ref, attempt, JobState.CANCELLED, _CANCELLED)
    try:
        body, image = _submit_body(rt, record, attempt)
    except InputError as error:
        return _finish(rt, ref, attempt, JobState.INVALID_INPUT, str(error))
    except RetryableError as error:
        return _input_trouble(rt, record, error)
    if staged:
        if not _wait_for_slot(rt, ref, attempt):
            return _state_if_current(rt, ref, attempt)
        if rt.ledger.is_cancelled(ref.batch_id):
            return _finish(rt, ref, attempt, JobState.CANCELLED, _CANCELLED)
    estimate = estimate_credits(rt, image)
    reserved = rt.ledger.reserve_budget(ref.batch_id, estimate)
    if reserved is None:
        message = f"skipped: its ~{estimate:.2f} credits would take the batch over its budget"
        return _finish(rt, ref, attempt, JobState.SKIPPED_BUDGET, message)
    begun = rt.ledger.transition(
        ref,
        from_states=[JobState.DISPATCHED],
        to_state=JobState.SUBMITTING,
        attempt=attempt,
        late_at=rt.clock() + rt.settings.deadlines.submit_late_s,
    )
    if not begun.applied:  # the reconcile sweep put it back in line meanwhile
        rt.ledger.release_budget(ref.batch_id, reserved)
        return None
    # Kept as `submitted_at` and `submitted_via`, for latency figures.
    posted_at, via = rt.clock(), "staged" if staged else "dispatch"
    try:
        submission = rt.provider.submit(body)
    except (RateLimited, ProviderUnavailable) as error:
        rt.ledger.release_budget(ref.batch_id, reserved)
        retry_after = error.retry_after_s if isinstance(error, RateLimited) else None
        rt.ledger.cool_down(retry_after or _backoff_s(rt.ledger.provider_trouble()))
        return _back_in_line(rt, ref, attempt, JobState.SUBMITTING, str(error))
    except AccountProblem as error:
        rt.ledger.release_budget(ref.batch_id, reserved)
        rt.ledger.pause(str(error))
        log.error("provider account paused: %s", error)
        return _back_in_line(rt, ref, attempt, JobState.SUBMITTING, str(error))
    except AmbiguousSubmit as error:
        # The task may exist and be billed: its reservation stays spent and its slot
        # held, and its callback (the token names this attempt) is awaited.
        log.warning("job %s attempt %d: ambiguous submit (%s)", ref, attempt, error)
        rt.ledger.transition(
            ref,
            from_states=[JobState.SUBMITTING],
            to_state=JobState.AWAITING_RESULT,
            attempt=attempt,
            fields={
                "error": f"submit outcome unknown ({error}); awaiting its callback",
                "submitted_at": posted_at,
                "submitted_via": via,
            },
            late_at=rt.clock() + rt.settings.deadlines.ambiguous_submit_s,
        )
        return JobState.AWAITING_RESULT
    except PermanentError as error:
        rt.ledger.release_budget(ref.batch_id, reserved)
        return _finish(rt, ref, attempt, JobState.FAILED, str(error))
    rt.ledger.provider_fine()
    rt.ledger.transition(
        ref,
        from_states=[JobState.SUBMITTING],
        to_state=JobState.AWAITING_RESULT,
        attempt=attempt,
        fields={
            "provider_task_id": submission.task_id,
            "polling_url": submission.polling_url,
            "cost_credits": submission.cost_credits,
            "input_troubles": None,
            "submitted_at": posted_at,
            "submitted_via": via,
        },
        cost_credits=submission.cost_credits if submission.cost_credits is not None else estimate,
        late_at=rt.clock() + rt.settings.deadlines.callback_late_s,
    )
    rt.ledger.release_budget(ref.batch_id, reserved)
    return JobState.AWAITING_RESULT


def _wait_for_slot(rt: Runtime, ref: JobRef, attempt: int) -> bool:
    """Wait until a slot is handed to staged `attempt` of the job; True once it holds
    one. False when the job moved on meanwhile (requeued by the reconcile sweep, say),
    or after waiting too long (the account paused, a long queue of slow tasks): then
    the job goes back to the front of its line, to be dispatched or staged again."""
    limit_s = min(STAGED_WAIT_MAX_S, rt.settings.deadlines.dispatch_late_s / 2)
    give_up_at = time.monotonic() + limit_s
    while not rt.ledger.wait_for_slot(ref, attempt, timeout_s=STAGED_POLL_S):
        record = rt.ledger.get(ref)
        if record is None or record.attempt != attempt:
            return False
        if record.state is JobState.DISPATCHED:  # handed a slot; its wake-up was lost
            return True
        if record.state is not JobState.STAGED:
            return False
        if time.monotonic() >= give_up_at:
            reason = f"no provider slot came free within {limit_s:g} s; back in line"
            _back_in_line(rt, ref, attempt, JobState.STAGED, reason)
            return False
    return True


def _state_if_current(rt: Runtime, ref: JobRef, attempt: int) -> JobState | None:
    """The job's state if it is still at `attempt` (else None: no longer ours)."""
    record = rt.ledger.get(ref)
    return record.state if record is not None and record.attempt == attempt else None


def estimate_credits(rt: Runtime, image: ImageInfo) -> float:
    """What a job should cost before the provider says: output megapixels x the price."""
    return image.megapixels * rt.settings.price_credits_per_mp


def _backoff_s(streak: int) -> float:
    """Seconds to wait after `streak` failures in a row to reach the provider."""
    return min(MAX_COOLDOWN_S, 2.0 ** max(0, streak - 1))


def _back_in_line(
    rt: Runtime, ref: JobRef, attempt: int, state: JobState, reason: str
) -> JobState | None:
    """Put a job that was not submitted back at the front of its batch's line."""
    moved = rt.ledger.transition(
        ref,
        from_states=[state],
        to_state=JobState.QUEUED,
        attempt=attempt,
        fields={"error": reason},
    )
    return JobState.QUEUED if moved.applied else None


def _input_trouble(rt: Runtime, record: JobRecord, error: RetryableError) -> JobState | None:
    """Its inputs could not be read just now: back in line, or failed after many tries."""
    ref, attempt = record.ref, record.attempt
    troubles = record.input_troubles + 1
    if troubles >= MAX_INPUT_TROUBLES:
        message = f"could not read its inputs after {troubles} tries: {error}"
        return _finish(rt, ref, attempt, JobState.FAILED, message)
    rt.ledger.cool_down(_backoff_s(troubles))
    moved = rt.ledger.transition(
        ref,
        from_states=[JobState.DISPATCHED, JobState.STAGED],
        to_state=JobState.QUEUED,
        attempt=attempt,
        fields={"error": str(error), "input_troubles": troubles},
    )
    return JobState.QUEUED if moved.applied else None


def _submit_body(
    rt: Runtime, record: JobRecord, attempt: int
) -> tuple[dict[str, object], ImageInfo]:
    """Read and check the inputs, then build the provider's request body.

    The pixels are decoded only if the inputs are not the very bytes that
    `fillpipe submit` already decoded in full (`JobSpec.checked_inputs`).
    """
    spec = record.spec
    image = rt.storage.read(S3Uri.parse(spec.image_uri), max_bytes=MAX_INPUT_BYTES)
    mask = (
        rt.storage.read(S3Uri.parse(spec.mask_uri), max_bytes=MAX_INPUT_BYTES)
        if spec.mask_uri
        else None
    )
    checked = spec.checked_inputs
    unchanged = checked is not None and checked == inputs_digest(image, mask)
    info = check_edit_inputs(image, mask, full=not unchanged)
    body: dict[str, object] = spec.params.to_request()
    body["image"] = base64.b64encode(image).decode()
    if mask is not None:
        body["mask"] = base64.b64encode(mask).decode()
    body["webhook_url"] = rt.callback_url(rt.signer.token(spec.ref, attempt))
    body["webhook_secret"] = rt.signer.webhook_secret(spec.ref, attempt)
    return body, info


# -- collect ---------------------------------------------------------------------------


def collect_job(
    rt: Runtime, ref: JobRef, attempt: int, *, slot_freed: Callable[[], object] = lambda: None
) -> JobState | None:
    """Read the task's result from the provider and store it; return the new state.

    The callback only says "look now": the outcome is what the task's polling URL
    reports. The job's slot is given back as soon as the provider says the task ended,
    before the download, and `slot_freed` is called then so the caller can fill it.
    """
    record = rt.ledger.get(ref)
    if record is None or record.attempt != attempt or record.state.is_terminal:
        return None
    if record.state in (JobState.DISPATCHED, JobState.SUBMITTING):
        raise NotReadyYet(f"job {ref} attempt {attempt} is still being submitted")
    polling_url = _polling_url(rt, record)
    if polling_url is None:
        return None  # an ambiguous submit nothing has named yet: the sweep decides
    taken = rt.ledger.transition(
        ref,
        from_states=[JobState.AWAITING_RESULT, JobState.COLLECTING],
        to_state=JobState.COLLECTING,
        attempt=attempt,
        late_at=rt.clock() + rt.settings.deadlines.collect_late_s,
    )
    if not taken.applied:
        return None
    try:
        return _collect(rt, record, polling_url, slot_freed)
    except ResultLost as error:
        return _lost(rt, record, error)
    except (PermanentError, InputError) as error:
        return _finish(rt, ref, attempt, JobState.FAILED, str(error))


def _polling_url(rt: Runtime, record: JobRecord) -> str | None:
    """The URL the submit answered with; else one for the task id its callback named."""
    if record.polling_url:
        return record.polling_url
    if record.provider_task_id:
        return rt.provider.fallback_polling_url(record.provider_task_id)
    return None


def _collect(
    rt: Runtime, record: JobRecord, polling_url: str, slot_freed: Callable[[], object]
) -> JobState:
    result = rt.provider.get_result(polling_url)
    if result.status is TaskStatus.PENDING:
        release_collect(rt, record.ref, record.attempt)  # the callback came early
        return JobState.AWAITING_RESULT
    if rt.ledger.release_slot(record.ref, record.attempt):  # the provider's task has ended
        slot_freed()
    if result.status is TaskStatus.NOT_FOUND:
        raise ResultLost("the provider no longer knows the task")
    if result.status is not TaskStatus.READY:
        refund = record.cost_credits if result.status in _UNCHARGED else None
        return _finish(
            rt,
            record.ref,
            record.attempt,
            JobState.FAILED,
            _failure_text(result),
            refund_credits=refund,
        )
    return _store_result(rt, record, polling_url, result)


def _lost(rt: Runtime, record: JobRecord, error: ResultLost) -> JobState | None:
    """The provider lost the result: submit again or fail, as `ON_LOST_RESULT` says."""
    if rt.settings.on_lost_result == "resubmit":
        log.warning("job %s attempt %d: %s; submitting again", record.ref, record.attempt, error)
        return _back_in_line(
            rt, record.ref, record.attempt, JobState.COLLECTING, f"{error}; submitted again"
        )
    message = f"{error}; `fillpipe retry {record.ref.batch_id}` submits it again (paid again)"
    return _finish(rt, record.ref, record.attempt, JobState.FAILED, message)


def _store_result(rt: Runtime, record: JobRecord, polling_url: str, result: TaskResult) -> JobState:
    data = _download(rt, polling_url, result)
    info = check_result(data)
    output = S3Uri.parse(record.spec.output_uri)
    outcome = rt.storage.put_new(
        output,
        data,
        content_type=_FORMAT_TYPES.get(info.format, record.spec.params.content_type),
        tags=output_tags(record),
        metadata=output_metadata(record, result),
    )
    if outcome is PutOutcome.EXISTED and not _is_ours(rt, output, record):
        raise UnsafeResult(f"{output} already exists and belongs to another job")
    rt.ledger.transition(
        record.ref,
        from_states=[JobState.COLLECTING],
        to_state=JobState.STORED,
        attempt=record.attempt,
        fields={"seed": result.seed, "error": None},
    )
    return JobState.STORED


def _download(rt: Runtime, polling_url: str, result: TaskResult) -> bytes:
    """Fetch the sample; an expired signed URL is re-read once from the polling URL."""
    if result.sample_url is None:
        raise UnsafeResult("provider reported Ready without a result URL")
    try:
        return rt.fetcher.fetch(result.sample_url)
    except ExpiredResultUrl:
        fresh = rt.provider.get_result(polling_url)
        if fresh.sample_url is None:
            raise ResultLost(
                f"its result URL expired and the provider reports {fresh.status}"
            ) from None
        return rt.fetcher.fetch(fresh.sample_url)


def output_tags(record: JobRecord) -> dict[str, str]:
    """The output object's tags: fillpipe's own three, then the user's."""
    spec = record.spec
    return {
        TAG_BATCH: spec.ref.batch_id,
        TAG_JOB: spec.ref.job_id,
        TAG_FINETUNE: spec.params.finetune_id,
        **spec.tags,
    }


def output_metadata(record: JobRecord, result: TaskResult) -> dict[str, str]:
    """Provenance kept with the output. No secrets: never URLs with signatures."""
    spec = record.spec
    metadata = {
        "fillpipe-batch": spec.ref.batch_id,
        "fillpipe-job": spec.ref.job_id,
        "fillpipe-attempt": str(record.attempt),
        "source-image": spec.image_uri,
        "provider-task-id": record.provider_task_id or "",
        "prompt-sha256": hashlib.sha256(spec.params.prompt.encode()).hexdigest(),
    }
    if spec.mask_uri:
        metadata["source-mask"] = spec.mask_uri
    if result.seed is not None:
        metadata["seed"] = str(result.seed)
    if record.cost_credits is not None:
        metadata["cost-credits"] = f"{record.cost_credits:g}"
    return metadata


def _is_ours(rt: Runtime, output: S3Uri, record: JobRecord) -> bool:
    existing = rt.storage.metadata(output) or {}
    return (
        existing.get("fillpipe-batch") == record.ref.batch_id
        and existing.get("fillpipe-job") == record.ref.job_id
    )


def _failure_text(result: TaskResult) -> str:
    detail = f": {result.details}" if result.details else ""
    return f"provider reported {result.status.value}{detail}"


# -- shared ----------------------------------------------------------------------------


def _finish(
    rt: Runtime,
    ref: JobRef,
    attempt: int,
    state: JobState,
    error: str,
    *,
    refund_credits: float | None = None,
) -> JobState:
    log.info("job %s attempt %d ends %s: %s", ref, attempt, state.value, error)
    rt.ledger.transition(
        ref,
        from_states=[JobState.STAGED, JobState.DISPATCHED, *_ACTIVE],
        to_state=state,
        attempt=attempt,
        fields={"error": error},
        cost_credits=-refund_credits if refund_credits else None,
    )
    return state


@dataclass(frozen=True)
class ReconcilePlan:
    """What the reconcile sweep did: jobs it wants polled now, jobs it put back in line."""

    collect: list[tuple[JobRef, int]] = field(default_factory=list)
    requeued: list[JobRef] = field(default_factory=list)
    ambiguous: list[JobRef] = field(default_factory=list)


def plan_reconcile(rt: Runtime) -> ReconcilePlan:
    """Act on every job that is late for its step (see `Deadlines`).

    staged          its submit task is gone (lost message, dead worker): back in line
    dispatched      its submit never began (lost message): back in line, slot freed
    submitting      no outcome recorded (the worker died mid-POST): ambiguous, awaited
    awaiting_result polled when its task is known; an ambiguous submit that nothing
                    named by its deadline gets a new attempt
    collecting      the collect died: collect again

    Each job is re-filed before it is returned, so the next sweep does not repeat it.
    """
    plan = ReconcilePlan()
    now = rt.clock()
    deadlines = rt.settings.deadlines
    for ref in rt.ledger.late_jobs(now):
        record = rt.ledger.get(ref)
        if record is None or not (record.state.holds_slot or record.state is JobState.STAGED):
            rt.ledger.unfile(ref)
            continue
        attempt, state = record.attempt, record.state
        if state in (JobState.STAGED, JobState.DISPATCHED):
            if _back_in_line(rt, ref, attempt, state, "its submit never began; back in line"):
                plan.requeued.append(ref)
        elif state is JobState.SUBMITTING:
            moved = rt.ledger.transition(
                ref,
                from_states=[state],
                to_state=JobState.AWAITING_RESULT,
                attempt=attempt,
                fields={"error": "its submit stopped midway; awaiting a callback naming it"},
                late_at=now + deadlines.ambiguous_submit_s,
            )
            if moved.applied:
                plan.ambiguous.append(ref)
        elif _polling_url(rt, record) is None:
            reason = "no sign of the task by its deadline; submitting a new attempt"
            if _back_in_line(rt, ref, attempt, state, reason):
                plan.requeued.append(ref)
        else:
            late_at = now + (
                deadlines.collect_late_s
                if state is JobState.COLLECTING
                else deadlines.callback_late_s
            )
            moved = rt.ledger.transition(
                ref, from_states=[state], to_state=state, attempt=attempt, late_at=late_at
            )
            if moved.applied:
                plan.collect.append((ref, attempt))
    return plan


def release_collect(rt: Runtime, ref: JobRef, attempt: int) -> None:
    """Put a collecting job back to awaiting its result, filed for the reconcile sweep."""
    rt.ledger.transition(
        ref,
        from_states=[JobState.COLLECTING],
        to_state=JobState.AWAITING_RESULT,
        attempt=attempt,
        late_at=rt.clock() + rt.settings.deadlines.callback_late_s,
    )
