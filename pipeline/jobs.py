"""The life of one job: submit it, accept its callback, collect its result.

Each function is idempotent on (job, attempt): it reads the ledger, acts only when the
job is where it expects, and changes state through one atomic transition. Celery tasks
and the receiver call these; what to enqueue next is returned, never done here.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from dataclasses import dataclass
from enum import Enum

from pipeline.callbacks import CallbackReport
from pipeline.delivery import ExpiredResultUrl
from pipeline.errors import (
    AmbiguousSubmit,
    FillpipeError,
    InputError,
    PermanentError,
    ResultUnavailable,
    RetryableError,
    UnsafeResult,
)
from pipeline.images import ImageInfo, check_edit_inputs, check_result
from pipeline.ledger import Ledger
from pipeline.models import CONTENT_TYPES, JobRecord, JobRef, JobState
from pipeline.provider import TaskResult, TaskStatus
from pipeline.runtime import Runtime
from pipeline.signing import CallbackClaim
from pipeline.storage import PutOutcome, S3Uri

log = logging.getLogger(__name__)

MAX_INPUT_BYTES = 40 * 1024 * 1024
# After this long without a callback, the reconcile sweep polls the task.
CALLBACK_LATE_S = 60.0
# After an ambiguous submit, how long to wait for a callback or poll before a new attempt.
AMBIGUOUS_SUBMIT_DEADLINE_S = 600.0
TAG_BATCH, TAG_JOB, TAG_FINETUNE = "fillpipe-batch", "fillpipe-job", "fillpipe-finetune"
_ACTIVE = (JobState.SUBMITTING, JobState.AWAITING_RESULT, JobState.COLLECTING)
_FORMAT_TYPES = {"JPEG": CONTENT_TYPES["jpeg"], "PNG": CONTENT_TYPES["png"], "WEBP": "image/webp"}


class NotReadyYet(RetryableError):
    """The callback beat the submit task's bookkeeping; collect again shortly."""


class CallbackOutcome(Enum):
    """What the receiver should do with a verified callback."""

    COLLECT = "collect"  # first callback of the current attempt: enqueue collect
    DUPLICATE = "duplicate"  # seen before: acknowledge, do nothing
    STALE = "stale"  # an older attempt, or the job is finished: acknowledge
    PENDING = "pending"  # the provider says the task is still running: acknowledge
    UNKNOWN = "unknown"  # no such job: answer 404


# -- submit ----------------------------------------------------------------------------


def submit_job(rt: Runtime, ref: JobRef) -> JobState | None:
    """Submit a queued job to the provider; return its new state (None if not queued).

    Raises `RetryableError` after putting the job back in `queued` when S3 or the
    provider cannot be reached or is at its limit; the caller retries later.
    """
    if rt.ledger.is_cancelled(ref.batch_id):
        rt.ledger.transition(ref, from_states=[JobState.QUEUED], to_state=JobState.CANCELLED)
        return None
    begun = rt.ledger.transition(
        ref, from_states=[JobState.QUEUED], to_state=JobState.SUBMITTING, new_attempt=True
    )
    if not begun.applied:
        return None
    attempt = begun.attempt
    try:
        body, image = _submit_body(rt, _require(rt, ref), attempt)
    except InputError as error:
        return _finish(rt, ref, attempt, JobState.INVALID_INPUT, str(error))
    except RetryableError:
        _requeue(rt, ref, attempt)
        raise
    estimate = estimate_credits(rt, image)
    reserved = rt.ledger.reserve_budget(ref.batch_id, estimate)
    if reserved is None:
        message = f"skipped: its ~{estimate:.2f} credits would take the batch over its budget"
        return _finish(rt, ref, attempt, JobState.SKIPPED_BUDGET, message)
    try:
        submission = rt.provider.submit(body)
    except RetryableError:
        rt.ledger.release_budget(ref.batch_id, reserved)
        _requeue(rt, ref, attempt)
        raise
    except AmbiguousSubmit as error:
        # The task may exist and be billed, so its reservation stays spent.
        log.warning("job %s attempt %d: ambiguous submit (%s)", ref, attempt, error)
        rt.ledger.transition(
            ref,
            from_states=[JobState.SUBMITTING],
            to_state=JobState.AWAITING_RESULT,
            attempt=attempt,
            fields={"error": str(error)},
            late_at=rt.clock() + AMBIGUOUS_SUBMIT_DEADLINE_S,
        )
        return JobState.AWAITING_RESULT
    except PermanentError as error:
        rt.ledger.release_budget(ref.batch_id, reserved)
        return _finish(rt, ref, attempt, JobState.FAILED, str(error))
    rt.ledger.transition(
        ref,
        from_states=[JobState.SUBMITTING],
        to_state=JobState.AWAITING_RESULT,
        attempt=attempt,
        fields={
            "provider_task_id": submission.task_id,
            "polling_url": submission.polling_url,
            "cost_credits": submission.cost_credits,
        },
        cost_credits=submission.cost_credits if submission.cost_credits is not None else estimate,
        late_at=rt.clock() + CALLBACK_LATE_S,
    )
    rt.ledger.release_budget(ref.batch_id, reserved)
    return JobState.AWAITING_RESULT


def estimate_credits(rt: Runtime, image: ImageInfo) -> float:
    """What a job should cost before the provider says: output megapixels x the price."""
    return image.megapixels * rt.settings.price_credits_per_mp


def _requeue(rt: Runtime, ref: JobRef, attempt: int) -> None:
    rt.ledger.transition(
        ref, from_states=[JobState.SUBMITTING], to_state=JobState.QUEUED, attempt=attempt
    )


def _submit_body(
    rt: Runtime, record: JobRecord, attempt: int
) -> tuple[dict[str, object], ImageInfo]:
    """Read and check the inputs, then build the provider's request body."""
    spec = record.spec
    image = rt.storage.read(S3Uri.parse(spec.image_uri), max_bytes=MAX_INPUT_BYTES)
    mask = (
        rt.storage.read(S3Uri.parse(spec.mask_uri), max_bytes=MAX_INPUT_BYTES)
        if spec.mask_uri
        else None
    )
    info = check_edit_inputs(image, mask)
    body: dict[str, object] = spec.params.to_request()
    body["image"] = base64.b64encode(image).decode()
    if mask is not None:
        body["mask"] = base64.b64encode(mask).decode()
    body["webhook_url"] = rt.callback_url(rt.signer.token(spec.ref, attempt))
    body["webhook_secret"] = rt.signer.webhook_secret(spec.ref, attempt)
    return body, info


# -- callback --------------------------------------------------------------------------


def accept_callback(
    ledger: Ledger, claim: CallbackClaim, report: CallbackReport
) -> CallbackOutcome:
    """Decide what a verified callback means for its job; records the first final one."""
    record = ledger.get(claim.ref)
    if record is None:
        return CallbackOutcome.UNKNOWN
    if record.attempt != claim.attempt or record.state not in _ACTIVE:
        return CallbackOutcome.STALE
    if not report.is_final:
        return CallbackOutcome.PENDING
    if not ledger.mark_callback(claim.ref, claim.attempt):
        return CallbackOutcome.DUPLICATE
    return CallbackOutcome.COLLECT


# -- collect ---------------------------------------------------------------------------


def collect_job(rt: Runtime, ref: JobRef, attempt: int) -> JobState | None:
    """Read the task's result from the provider and store it; return the new state.

    The callback only says "look now": the outcome is what `polling_url` reports.
    """
    record = rt.ledger.get(ref)
    if record is None or record.attempt != attempt or record.state.is_terminal:
        return None
    if record.state is JobState.SUBMITTING:
        raise NotReadyYet(f"job {ref} attempt {attempt} is still being submitted")
    if record.polling_url is None:
        return None  # an ambiguous submit: the reconcile sweep decides
    taken = rt.ledger.transition(
        ref,
        from_states=[JobState.AWAITING_RESULT, JobState.COLLECTING],
        to_state=JobState.COLLECTING,
        attempt=attempt,
    )
    if not taken.applied:
        return None
    try:
        return _collect(rt, record, record.polling_url)
    except (PermanentError, InputError) as error:
        return _finish(rt, ref, attempt, JobState.FAILED, str(error))


def _collect(rt: Runtime, record: JobRecord, polling_url: str) -> JobState:
    result = rt.provider.get_result(polling_url)
    if result.status is TaskStatus.PENDING:
        release_collect(rt, record.ref, record.attempt)  # the callback came early
        return JobState.AWAITING_RESULT
    if result.status is not TaskStatus.READY:
        raise ResultUnavailable(_failure_text(result))
    return _store_result(rt, record, polling_url, result)


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
            raise
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


def _finish(rt: Runtime, ref: JobRef, attempt: int, state: JobState, error: str) -> JobState:
    log.info("job %s attempt %d ends %s: %s", ref, attempt, state.value, error)
    rt.ledger.transition(
        ref, from_states=_ACTIVE, to_state=state, attempt=attempt, fields={"error": error}
    )
    return state


def _require(rt: Runtime, ref: JobRef) -> JobRecord:
    record = rt.ledger.get(ref)
    if record is None:
        raise FillpipeError(f"job {ref} vanished from the ledger")
    return record


@dataclass(frozen=True)
class ReconcilePlan:
    """What the reconcile sweep found: jobs to poll now, jobs to submit again."""

    collect: list[tuple[JobRef, int]]
    resubmit: list[JobRef]


def plan_reconcile(rt: Runtime) -> ReconcilePlan:
    """Jobs whose callback is late: poll those with a polling URL; re-queue the others.

    A job without a polling URL had an ambiguous submit; once its deadline has passed
    with neither callback nor poll showing the task, a new attempt is made.
    """
    collect: list[tuple[JobRef, int]] = []
    resubmit: list[JobRef] = []
    now = rt.clock()
    for ref in rt.ledger.late_jobs(now):
        record = rt.ledger.get(ref)
        if record is None or record.state is not JobState.AWAITING_RESULT:
            continue
        # Re-file before polling, so the next sweep does not poll the same job again.
        next_state, late_at = (
            (JobState.AWAITING_RESULT, now + CALLBACK_LATE_S)
            if record.polling_url
            else (JobState.QUEUED, None)
        )
        moved = rt.ledger.transition(
            ref,
            from_states=[JobState.AWAITING_RESULT],
            to_state=next_state,
            attempt=record.attempt,
            late_at=late_at,
        )
        if not moved.applied:
            continue
        if record.polling_url:
            collect.append((ref, record.attempt))
        else:
            resubmit.append(ref)
    return ReconcilePlan(collect, resubmit)


def give_up(rt: Runtime, ref: JobRef, error: str) -> None:
    """End a job that could not be submitted after every retry."""
    rt.ledger.transition(
        ref,
        from_states=[JobState.QUEUED, JobState.SUBMITTING],
        to_state=JobState.FAILED,
        fields={"error": error},
    )


def release_collect(rt: Runtime, ref: JobRef, attempt: int) -> None:
    """Put a collecting job back to awaiting its result, filed for the reconcile sweep."""
    rt.ledger.transition(
        ref,
        from_states=[JobState.COLLECTING],
        to_state=JobState.AWAITING_RESULT,
        attempt=attempt,
        late_at=rt.clock() + CALLBACK_LATE_S,
    )
