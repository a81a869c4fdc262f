"""Creating batches: an id, the validated manifest in S3, the jobs in the ledger."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence

from pipeline.models import JobSpec
from pipeline.runtime import Runtime
from pipeline.storage import S3Uri

BATCH_ID_RANDOM_BYTES = 4


def new_batch_id(clock: Callable[[], float] = time.time) -> str:
    """A short, sortable, unique batch id such as `b20261124-3f9a1c2e` (never a ':')."""
    day = time.strftime("%Y%m%d", time.gmtime(clock()))
    return f"b{day}-{secrets.token_hex(BATCH_ID_RANDOM_BYTES)}"


def batch_prefix(rt: Runtime, batch_id: str) -> str:
    """Where a batch's reports live: `s3://BUCKET/outputs/<batch>/`."""
    return f"s3://{rt.settings.bucket}/outputs/{batch_id}/"


def default_output_uri(rt: Runtime, batch_id: str, job_id: str, extension: str) -> str:
    return f"{batch_prefix(rt, batch_id)}{job_id}.{extension}"


def create_batch(rt: Runtime, batch_id: str, specs: Sequence[JobSpec]) -> int:
    """Store the validated manifest, then record every job as queued; return the count."""
    manifest = "".join(spec.to_json() + "\n" for spec in specs).encode()
    rt.storage.write(
        S3Uri.parse(batch_prefix(rt, batch_id) + "manifest.jsonl"),
        manifest,
        content_type="application/x-ndjson",
    )
    return rt.ledger.create_batch(batch_id, specs)
