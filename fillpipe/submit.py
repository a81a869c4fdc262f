"""`fillpipe submit MANIFEST`: validate every row, upload local inputs, create a batch.

Two passes over the manifest, both streaming: the first checks every row (and that
every local input file exists) and stops with all problems listed before anything
is uploaded, recorded or spent; the second uploads, records and enqueues.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import click
from rich.console import Console

from fillpipe.progress import wait_for_batch
from pipeline.batches import batch_refs, create_batch, new_batch_id
from pipeline.inputs import InputUploader, local_path
from pipeline.ledger import BatchSummary
from pipeline.manifest import (
    ManifestFormat,
    ManifestInvalid,
    ManifestRow,
    Problem,
    detect_format,
    resolve_output,
    validate_rows,
)
from pipeline.models import JobRef, JobSpec, JobState
from pipeline.runtime import Runtime
from pipeline.settings import Settings
from pipeline.storage import S3_SCHEME, S3Uri
from workers.app import create_celery_app, enqueue_submits

EXIT_FAILURE = 1


def run_submit(manifest: str, environ: Mapping[str, str], *, dry_run: bool, wait: bool) -> None:
    """Validate, then (unless `dry_run`) create and enqueue the batch; print its id."""
    settings = Settings.from_environ(environ)
    fmt = detect_format(manifest)
    rt = Runtime.from_settings(settings)
    try:
        count = _validate(rt, manifest, fmt)
        if dry_run:
            click.echo(f"{manifest}: {count} rows valid; nothing submitted (--dry-run)")
            return
        batch_id = _create(rt, manifest, fmt)
        click.echo(batch_id)
        if wait and _failed(wait_for_batch(rt.ledger, batch_id, Console(stderr=True))):
            raise SystemExit(EXIT_FAILURE)
    finally:
        rt.close()


def _failed(summary: BatchSummary) -> bool:
    return summary.counts.get(JobState.STORED, 0) < summary.total


def _validate(rt: Runtime, manifest: str, fmt: ManifestFormat) -> int:
    """Pass 1: every row valid and every local file present, else `ManifestInvalid`."""
    base_dir = _base_dir(manifest)
    missing: list[Problem] = []
    count = 0
    with _lines(rt, manifest) as lines:
        for row in validate_rows(lines, source=manifest, fmt=fmt, bucket=rt.settings.bucket):
            count += 1
            missing.extend(_missing_files(manifest, row, base_dir))
    if missing:
        raise ManifestInvalid(missing)
    return count


def _missing_files(source: str, row: ManifestRow, base_dir: Path) -> Iterator[Problem]:
    for name, location in (("image", row.image), ("mask", row.mask)):
        path = local_path(location, base_dir) if location else None
        if path is not None and not path.is_file():
            yield Problem(
                source,
                row.line,
                name,
                f"local file {str(path)!r} does not exist",
                "give a path relative to the manifest's folder, an absolute path, or an s3:// URI",
            )


def _create(rt: Runtime, manifest: str, fmt: ManifestFormat) -> str:
    """Pass 2: upload local inputs, record the batch, enqueue every job."""
    batch_id = new_batch_id(rt.clock)
    uploader = InputUploader(rt.storage, rt.settings.bucket, _base_dir(manifest))
    with _lines(rt, manifest) as lines:
        specs = (
            _spec(rt, batch_id, row, uploader)
            for row in validate_rows(lines, source=manifest, fmt=fmt)
        )
        create_batch(rt, batch_id, specs)
    enqueue_submits(create_celery_app(rt.settings), batch_refs(rt, batch_id))
    return batch_id


def _spec(rt: Runtime, batch_id: str, row: ManifestRow, uploader: InputUploader) -> JobSpec:
    image = uploader.resolve(row.image)
    output = resolve_output(
        row.output,
        bucket=rt.settings.bucket,
        batch_id=batch_id,
        job_id=row.job_id,
        ext=row.params.extension,
        image=row.image,
    )
    return JobSpec(
        ref=JobRef(batch_id, row.job_id),
        image_uri=image,
        mask_uri=uploader.resolve(row.mask) if row.mask else None,
        output_uri=str(output),
        params=row.params,
        tags=row.tags,
    )


@contextlib.contextmanager
def _lines(rt: Runtime, manifest: str) -> Iterator[Iterable[str]]:
    """The manifest's lines, streamed from a local file or from S3."""
    if manifest.startswith(S3_SCHEME):
        with rt.storage.stream_lines(S3Uri.parse(manifest)) as lines:
            yield lines
        return
    try:
        with open(manifest, encoding="utf-8", newline="") as file:
            yield file
    except FileNotFoundError:
        raise ManifestInvalid(
            [Problem(manifest, 0, "", "the manifest file does not exist", "check the path")]
        ) from None


def _base_dir(manifest: str) -> Path:
    """Local inputs are relative to the manifest's folder (the current one for s3://)."""
    return Path.cwd() if manifest.startswith(S3_SCHEME) else Path(manifest).resolve().parent
