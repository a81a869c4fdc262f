"""Batch reports: one line per job, written to `outputs/<batch>/results.jsonl`."""

from __future__ import annotations

import json
from typing import Any

from pipeline.batches import batch_prefix
from pipeline.models import JobRecord
from pipeline.runtime import Runtime
from pipeline.states import JobState
from pipeline.storage import S3Uri

RESULT_FIELDS = (
    "id",
    "state",
    "image",
    "output",
    "cost_credits",
    "error",
    "attempt",
    "provider_task_id",
    "seed",
    "rule",
    "via",
    "qa",
)


def result_row(record: JobRecord) -> dict[str, Any]:
    """What a user wants to know of one job."""
    stored = record.state is JobState.STORED
    return {
        "id": record.ref.job_id,
        "state": record.state.value,
        "image": record.spec.image_uri,
        "output": record.spec.output_uri if stored else None,
        "cost_credits": record.cost_credits,
        "error": record.error,
        "attempt": record.attempt,
        "provider_task_id": record.provider_task_id,
        "seed": record.seed,
        # Jobs made by trigger rules: the rule, and how its event arrived.
        "rule": record.spec.origin.get("rule"),
        "via": record.spec.origin.get("via"),
        # How the stored output came out: compositing, drift, seam, flagged.
        "qa": record.qa,
    }


# The `qa` object's figures, as CSV columns `qa.<name>`.
QA_FIELDS = ("composited", "resized", "drift_mean", "drift_p99", "seam", "flagged")
CSV_FIELDS = (*(name for name in RESULT_FIELDS if name != "qa"), *(f"qa.{n}" for n in QA_FIELDS))


def csv_row(row: dict[str, Any]) -> dict[str, Any]:
    """A result row with its `qa` object spread into `qa.<name>` columns (empty without)."""
    qa = row.get("qa") or {}
    flat = {name: value for name, value in row.items() if name != "qa"}
    return {**flat, **{f"qa.{name}": qa.get(name) for name in QA_FIELDS}}


def is_flagged(row: dict[str, Any]) -> bool:
    return bool((row.get("qa") or {}).get("flagged"))


def write_results(rt: Runtime, batch_id: str) -> S3Uri:
    """Rewrite the batch's results manifest from the ledger; return where it is."""
    lines = (
        json.dumps(result_row(record), ensure_ascii=False) + "\n"
        for record in rt.ledger.jobs.of_batch(batch_id)
    )
    uri = S3Uri.parse(batch_prefix(rt, batch_id) + "results.jsonl")
    rt.storage.write(uri, "".join(lines).encode(), content_type="application/x-ndjson")
    return uri


def job_ended(rt: Runtime, batch_id: str) -> S3Uri | None:
    """After a job's end: write the results manifest now if the batch is complete, else
    leave it for the next `refresh_stale_results` (so a large batch is not rewritten
    once per job). A complete batch that notifies when it finishes is left to its
    notification, which writes the manifest before it names it (`pipeline.notify`)."""
    summary = rt.ledger.batches.summary(batch_id)
    if summary is not None and summary.done:
        target = rt.ledger.notifications.target(batch_id)
        if target is not None and not target.per_job:
            return None
        return write_results(rt, batch_id)
    rt.ledger.batches.mark_results_stale(batch_id)
    return None


def refresh_stale_results(rt: Runtime) -> list[str]:
    """Rewrite the results manifest of every batch whose jobs ended since the last time."""
    batches = rt.ledger.batches.pop_stale_results()
    for batch_id in batches:
        write_results(rt, batch_id)
    return batches
