"""Batches made straight in a ledger, and their jobs moved along without a provider."""

from __future__ import annotations

from pipeline.ledger import Ledger
from pipeline.models import EditParams, JobRef, JobSpec
from pipeline.states import JobState

FAILED_ERROR = "provider said: Content Moderated"
WALK_TO_STORED = (JobState.SUBMITTING, JobState.AWAITING_RESULT, JobState.COLLECTING)


def make_batch(
    ledger: Ledger,
    batch_id: str,
    jobs: int,
    *,
    image_uri: str = "s3://fillpipe/in/{index}.png",
    account: str = "default",
) -> list[JobRef]:
    """Record a batch of `jobs` jobs (`job-000`, ...); the dispatcher picks its first ones."""
    specs = [
        JobSpec(
            ref=JobRef(batch_id, f"job-{index:03d}"),
            image_uri=image_uri.format(index=index),
            mask_uri=None,
            output_uri=f"s3://fillpipe/out/{batch_id}/{index}.png",
            params=EditParams(prompt="p", finetune_id="ft"),
            account=account,
        )
        for index in range(jobs)
    ]
    ledger.batches.create(batch_id, specs)
    return [spec.ref for spec in specs]


def dispatched(ledger: Ledger, batch_id: str) -> list[JobRef]:
    return [r.ref for r in ledger.jobs.of_batch(batch_id) if r.state is JobState.DISPATCHED]


def end_dispatched(ledger: Ledger, batch_id: str, state: JobState) -> list[JobRef]:
    """Move every dispatched job of the batch to `state` (stored: through the provider's
    steps), which hands their slots to the next jobs; return the jobs moved."""
    moved = dispatched(ledger, batch_id)
    for ref in moved:
        source = JobState.DISPATCHED
        if state is JobState.STORED:
            for step in WALK_TO_STORED:
                ledger.jobs.transition(ref, from_states=[source], to_state=step)
                source = step
        fields = {"error": FAILED_ERROR} if state is JobState.FAILED else {}
        ledger.jobs.transition(ref, from_states=[source], to_state=state, fields=fields)
    return moved
