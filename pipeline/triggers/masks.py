"""Jobs waiting for their masks: released when the mask lands, failed when it has not
landed by the deadline (`Deadlines.mask_wait_s`)."""

from __future__ import annotations

from pipeline.ledger import Ledger
from pipeline.models import JobRecord, JobRef
from pipeline.states import JobState
from pipeline.storage import S3Uri, Storage


def release_mask(ledger: Ledger, mask_uri: str) -> list[JobRef]:
    """Put every job waiting for the mask at `mask_uri` in line; return them."""
    waiting = ledger.triggers.waiting_for(mask_uri)
    released = [
        ref
        for ref in waiting
        if ledger.jobs.transition(
            ref, from_states=[JobState.AWAITING_MASK], to_state=JobState.QUEUED
        ).applied
    ]
    ledger.triggers.stop_waiting(mask_uri, waiting)
    return released


def settle_overdue(ledger: Ledger, storage: Storage, record: JobRecord, wait_s: float) -> bool:
    """A job whose mask wait is over: in line if the mask is there after all (its event
    was missed), else failed with the reason. True if the job is now queued."""
    mask_uri = record.spec.mask_uri or ""
    landed = bool(mask_uri) and storage.head(S3Uri.parse(mask_uri)) is not None
    if landed:
        target, fields = JobState.QUEUED, {}
    else:
        reason = (
            f"its mask {mask_uri} did not land within {wait_s:g} s; put it there, then "
            f"`fillpipe retry {record.ref.batch_id}`"
        )
        target, fields = JobState.FAILED, {"error": reason}
    ledger.jobs.transition(
        record.ref, from_states=[JobState.AWAITING_MASK], to_state=target, fields=fields
    )
    if mask_uri:
        ledger.triggers.stop_waiting(mask_uri, [record.ref])
    return landed
