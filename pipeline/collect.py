"""Collecting one job's result: ask the provider, store the output in S3 with its tags.

The callback only says "look now": the outcome is what the task's polling URL reports.
With callbacks off the poller queues the collects (`pipeline.polling`), and a task still
running is filed for its next poll.
The job's slot is given back as soon as the provider says the task has ended, before
the download, and the dispatcher fills it in the same step. The output (the result laid
over the source through the mask, `pipeline.outputs`) is written in
one PutObject with its tags, metadata and `If-None-Match: *`, so an attempt creates
its object at most once and a consumer never sees it untagged.
"""

from __future__ import annotations

import hashlib
import logging

from pipeline import metrics
from pipeline.delivery import ExpiredResultUrl
from pipeline.errors import (
    InputError,
    NotReadyYet,
    PermanentError,
    ResultLost,
    UnsafeResult,
)
from pipeline.logcontext import add_to_job_context
from pipeline.models import JobRecord, JobRef
from pipeline.moves import back_in_line, end_job
from pipeline.outputs import make_output
from pipeline.polling import file_next_poll
from pipeline.provider import TaskResult, TaskStatus
from pipeline.runtime import Runtime
from pipeline.states import JobState
from pipeline.storage import PutOutcome, S3Uri

log = logging.getLogger(__name__)

TAG_BATCH, TAG_JOB, TAG_FINETUNE = "fillpipe-batch", "fillpipe-job", "fillpipe-finetune"
_UNCHARGED = (TaskStatus.REQUEST_MODERATED, TaskStatus.CONTENT_MODERATED)
_COLLECTING = (JobState.COLLECTING,)


@metrics.timed(metrics.COLLECT_SECONDS)
def collect_job(rt: Runtime, ref: JobRef, attempt: int) -> JobState | None:
    """Read the task's result from the provider and store it; return the new state
    (None: not ours, or not known yet). Raises `NotReadyYet` while the submit that
    created the task has not recorded it."""
    record = rt.ledger.jobs.get(ref)
    if record is None or record.attempt != attempt or record.state.is_terminal:
        return None
    add_to_job_context(provider_task=record.provider_task_id)
    if record.state in (JobState.DISPATCHED, JobState.SUBMITTING):
        raise NotReadyYet(f"job {ref} attempt {attempt} is still being submitted")
    polling_url = polling_url_of(rt, record)
    if polling_url is None:
        return None  # an ambiguous submit nothing has named yet: the sweep decides
    taken = rt.ledger.jobs.transition(
        ref,
        from_states=[JobState.AWAITING_RESULT, JobState.COLLECTING],
        to_state=JobState.COLLECTING,
        attempt=attempt,
        late_at=rt.clock() + rt.settings.deadlines.collect_late_s,
    )
    if not taken.applied:
        return None
    try:
        return _collect(rt, record, polling_url)
    except ResultLost as error:
        return _lost(rt, record, error)
    except (PermanentError, InputError) as error:
        return end_job(rt, ref, attempt, JobState.FAILED, str(error), from_states=_COLLECTING)


def polling_url_of(rt: Runtime, record: JobRecord) -> str | None:
    """The URL the submit answered with; else one for the task id its callback named."""
    if record.polling_url:
        return record.polling_url
    if record.provider_task_id:
        return rt.providers[record.account].fallback_polling_url(record.provider_task_id)
    return None


def release_collect(rt: Runtime, ref: JobRef, attempt: int) -> None:
    """Put a collecting job back to awaiting its result, filed for the reconcile sweep
    and, with callbacks off, for its next poll."""
    moved = rt.ledger.jobs.transition(
        ref,
        from_states=_COLLECTING,
        to_state=JobState.AWAITING_RESULT,
        attempt=attempt,
        late_at=rt.clock() + rt.settings.deadlines.callback_late_s,
    )
    if moved.applied and not rt.settings.callbacks:
        file_next_poll(rt, ref, attempt)


def _collect(rt: Runtime, record: JobRecord, polling_url: str) -> JobState:
    result = rt.providers[record.account].get_result(polling_url)
    if result.status is TaskStatus.PENDING:
        release_collect(rt, record.ref, record.attempt)  # a callback came early, or a poll
        return JobState.AWAITING_RESULT
    rt.ledger.slots.release(record.ref, record.attempt)  # the provider's task has ended
    if result.status is TaskStatus.NOT_FOUND:
        raise ResultLost("the provider no longer knows the task")
    if result.status is not TaskStatus.READY:
        refund = record.cost_credits if result.status in _UNCHARGED else None
        return end_job(
            rt,
            record.ref,
            record.attempt,
            JobState.FAILED,
            _failure_text(result),
            from_states=_COLLECTING,
            refund_credits=refund,
        )
    return _store_result(rt, record, polling_url, result)


def _lost(rt: Runtime, record: JobRecord, error: ResultLost) -> JobState | None:
    """The provider lost the result: submit again or fail, as `ON_LOST_RESULT` says."""
    ref, attempt = record.ref, record.attempt
    if rt.settings.on_lost_result == "resubmit":
        log.warning("job %s attempt %d: %s; submitting again", ref, attempt, error)
        return back_in_line(rt, ref, attempt, JobState.COLLECTING, f"{error}; submitted again")
    message = f"{error}; `fillpipe retry {ref.batch_id}` submits it again (paid again)"
    return end_job(rt, ref, attempt, JobState.FAILED, message, from_states=_COLLECTING)


def _store_result(rt: Runtime, record: JobRecord, polling_url: str, result: TaskResult) -> JobState:
    data = _download(rt, record, polling_url, result)
    made = make_output(rt, record, data)  # decodes the result: bytes that do not, fail it
    output = S3Uri.parse(record.spec.output_uri)
    outcome = rt.storage.put_new(
        output,
        made.data,
        content_type=made.content_type,
        tags=output_tags(record),
        metadata={**output_metadata(record, result), **made.metadata()},
    )
    if outcome is PutOutcome.EXISTED and not _is_ours(rt, output, record):
        raise UnsafeResult(f"{output} already exists and belongs to another job")
    rt.ledger.jobs.transition(
        record.ref,
        from_states=_COLLECTING,
        to_state=JobState.STORED,
        attempt=record.attempt,
        fields={"seed": result.seed, "error": None, "qa": made.qa_json},
    )
    metrics.stored(rt.ledger.redis, rt.ledger.keys, record.ref, record.attempt)
    return JobState.STORED


def _download(rt: Runtime, record: JobRecord, polling_url: str, result: TaskResult) -> bytes:
    """Fetch the sample; an expired signed URL is re-read once from the polling URL."""
    if result.sample_url is None:
        raise UnsafeResult("provider reported Ready without a result URL")
    try:
        return rt.fetcher.fetch(result.sample_url)
    except ExpiredResultUrl:
        fresh = rt.providers[record.account].get_result(polling_url)
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
