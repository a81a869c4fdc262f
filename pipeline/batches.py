"""Creating batches: an id, the validated manifest in S3, the jobs in the ledger."""

from __future__ import annotations

import secrets
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from typing import IO

from pipeline.ledger.batches import DEFAULT_PRIORITY
from pipeline.models import JobSpec
from pipeline.notify_target import check_target
from pipeline.runtime import Runtime
from pipeline.storage import S3Uri

BATCH_ID_RANDOM_BYTES = 4
MANIFEST_SPOOL_BYTES = 8 * 1024 * 1024


def new_batch_id(clock: Callable[[], float] = time.time) -> str:
    """A short, sortable, unique batch id such as `b20261124-3f9a1c2e` (never a ':')."""
    day = time.strftime("%Y%m%d", time.gmtime(clock()))
    return f"b{day}-{secrets.token_hex(BATCH_ID_RANDOM_BYTES)}"


def batch_prefix(rt: Runtime, batch_id: str) -> str:
    """Where a batch's reports live: `s3://BUCKET/outputs/<batch>/`."""
    return f"s3://{rt.settings.bucket}/outputs/{batch_id}/"


def default_output_uri(rt: Runtime, batch_id: str, job_id: str, extension: str) -> str:
    return f"{batch_prefix(rt, batch_id)}{job_id}.{extension}"


def create_batch(
    rt: Runtime,
    batch_id: str,
    specs: Iterable[JobSpec],
    *,
    budget_credits: float | None = None,
    priority: int = DEFAULT_PRIORITY,
    source: str = "",
    notify_url: str | None = None,
) -> int:
    """Record every job as queued and store the validated manifest; return the count.
    Free provider slots are leased to the batch's first jobs as it is recorded.
    `source` says where the batch came from (a manifest's path or URI, "demo");
    `notify_url` is POSTed once every job has ended (checked first, by `check_target`).

    `specs` is consumed once, as a stream: the manifest is spooled to a temporary file
    (on disk past `MANIFEST_SPOOL_BYTES`), never held whole in memory.
    """
    if notify_url is not None:
        check_target(rt.settings, notify_url)
    with tempfile.SpooledTemporaryFile(max_size=MANIFEST_SPOOL_BYTES) as manifest:

        def recorded() -> Iterator[JobSpec]:
            for spec in specs:
                manifest.write(spec.to_json().encode() + b"\n")
                yield spec

        count = rt.ledger.batches.create(
            batch_id,
            recorded(),
            budget_credits=budget_credits,
            priority=priority,
            source=source,
            notify_url=notify_url,
        )
        _upload_manifest(rt, batch_id, manifest)
    return count


def _upload_manifest(rt: Runtime, batch_id: str, manifest: IO[bytes]) -> None:
    """The batch's validated manifest, spooled as it was recorded, to its reports' place."""
    manifest.seek(0)
    rt.storage.upload(
        S3Uri.parse(batch_prefix(rt, batch_id) + "manifest.jsonl"),
        manifest,
        content_type="application/x-ndjson",
    )
