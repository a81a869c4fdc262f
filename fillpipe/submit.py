"""`fillpipe submit MANIFEST`: validate every row, upload local inputs, create a batch.

Two passes over the manifest, both streaming: the first checks every row (and that
every local input file exists) and stops with all problems listed before anything
is uploaded, recorded or spent; the second uploads, records and enqueues.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import click
from rich.console import Console

from fillpipe.progress import wait_for_batch
from pipeline.batches import create_batch, new_batch_id
from pipeline.errors import InputError
from pipeline.images import check_in_full
from pipeline.inputs import InputUploader, local_path, read_local
from pipeline.ledger import DEFAULT_PRIORITY, BatchSummary
from pipeline.manifest import (
    ManifestFormat,
    ManifestInvalid,
    ManifestRow,
    Problem,
    detect_format,
    resolve_output,
    validate_rows,
)
from pipeline.models import CREDITS_PER_USD, JobRef, JobSpec
from pipeline.runtime import Runtime
from pipeline.settings import Settings
from pipeline.states import JobState
from pipeline.storage import S3_SCHEME, S3Uri
from pipeline.submit import MAX_INPUT_BYTES

EXIT_FAILURE = 1
# Without --check-inputs/--no-check-inputs, batches up to this size have every image
# read and checked before anything is submitted.
AUTO_CHECK_INPUTS_MAX_ROWS = 200
INPUT_HINT = "fix or replace the image or mask, then submit again"


@dataclass(frozen=True)
class SubmitOptions:
    """How `fillpipe submit` runs. `check_inputs=None` checks small batches only."""

    dry_run: bool = False
    wait: bool = False
    budget_usd: float | None = None
    check_inputs: bool | None = None
    priority: int = DEFAULT_PRIORITY


def run_submit(manifest: str, environ: Mapping[str, str], options: SubmitOptions) -> None:
    """Validate, then (unless a dry run) create and enqueue the batch; print its id."""
    settings = Settings.from_environ(environ)
    fmt = detect_format(manifest)
    rt = Runtime.from_settings(settings)
    try:
        count = _validate(rt, manifest, fmt)
        check = options.check_inputs
        checked: dict[str, str] = {}
        if check or (check is None and count <= AUTO_CHECK_INPUTS_MAX_ROWS):
            megapixels, checked = _check_inputs(rt, manifest, fmt)
            credits = megapixels * settings.price_credits_per_mp
            click.echo(
                f"{count} rows valid, inputs checked; estimated cost "
                f"{credits:.2f} credits (${credits / CREDITS_PER_USD:.2f})",
                err=True,
            )
        if options.dry_run:
            click.echo(f"{manifest}: {count} rows valid; nothing submitted (--dry-run)")
            return
        budget = None if options.budget_usd is None else options.budget_usd * CREDITS_PER_USD
        batch_id = _create(
            rt, manifest, fmt, checked=checked, budget_credits=budget, priority=options.priority
        )
        click.echo(batch_id)
        if options.wait:
            console = Console(stderr=True)
            summary = wait_for_batch(rt.ledger, batch_id, console, slots=settings.provider_slots)
            if _failed(summary):
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
    with _rows(rt, manifest, fmt) as rows:
        for row in rows:
            count += 1
            missing.extend(_missing_files(manifest, row, base_dir))
    if missing:
        raise ManifestInvalid(missing)
    return count


def _check_inputs(rt: Runtime, manifest: str, fmt: ManifestFormat) -> tuple[float, dict[str, str]]:
    """Pass 1b: every image decodes, masks match, alpha where no mask; the total
    megapixels and each job's `inputs_digest`, so its submit need not decode them again."""
    base_dir = _base_dir(manifest)
    problems: list[Problem] = []
    megapixels = 0.0
    checked: dict[str, str] = {}
    with _rows(rt, manifest, fmt) as rows:
        for row in rows:
            try:
                image = _read_input(rt, row.image, base_dir)
                mask = _read_input(rt, row.mask, base_dir) if row.mask else None
                info, checked[row.job_id] = check_in_full(image, mask)
                megapixels += info.megapixels
            except InputError as error:
                problems.append(Problem(manifest, row.line, "image", str(error), INPUT_HINT))
    if problems:
        raise ManifestInvalid(problems)
    return megapixels, checked


def _read_input(rt: Runtime, location: str, base_dir: Path) -> bytes:
    path = local_path(location, base_dir)
    if path is None:
        return rt.storage.read(S3Uri.parse(location), max_bytes=MAX_INPUT_BYTES)
    return read_local(path)


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


def _create(
    rt: Runtime,
    manifest: str,
    fmt: ManifestFormat,
    *,
    checked: Mapping[str, str],
    budget_credits: float | None,
    priority: int,
) -> str:
    """Pass 2: upload local inputs and record the batch in line for the dispatcher
    (free slots are leased to its first jobs at once)."""
    batch_id = new_batch_id(rt.clock)
    uploader = InputUploader(rt.storage, rt.settings.bucket, _base_dir(manifest))
    with _rows(rt, manifest, fmt) as rows:
        specs = (_spec(rt, batch_id, row, uploader, checked.get(row.job_id)) for row in rows)
        create_batch(
            rt,
            batch_id,
            specs,
            budget_credits=budget_credits,
            priority=priority,
            source=manifest,
        )
    return batch_id


def _spec(
    rt: Runtime,
    batch_id: str,
    row: ManifestRow,
    uploader: InputUploader,
    checked_inputs: str | None,
) -> JobSpec:
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
        checked_inputs=checked_inputs,
    )


@contextlib.contextmanager
def _rows(rt: Runtime, manifest: str, fmt: ManifestFormat) -> Iterator[Iterator[ManifestRow]]:
    """The manifest's validated rows, streamed (one pass; `ManifestInvalid` at the end)."""
    with _lines(rt, manifest) as lines:
        yield validate_rows(lines, source=manifest, fmt=fmt, bucket=rt.settings.bucket)


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
