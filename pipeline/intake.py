"""Intake: a manifest (JSON Lines or CSV, local or s3://) becomes a batch of queued jobs.

`validate` reads the manifest, streaming, and checks every row and that every local input
file exists; if anything is wrong it raises `ManifestInvalid` listing every problem with
its file, line, field and a hint. Batches of up to `AUTO_CHECK_INPUTS_MAX_ROWS` rows (or
any batch when asked) then have every image and mask decoded in full, which also gives
the cost estimate and lets each job record the digest of the inputs it was checked with,
so its submit task need not decode them again. Nothing is uploaded or recorded before
all of this has passed.

`create` then uploads local inputs (content-addressed, see `pipeline.inputs`), records
the jobs in the ledger, where free provider slots are leased to the first of them at
once, and stores the validated manifest next to the outputs. `submit` is both in one
call.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.batches import create_batch, new_batch_id
from pipeline.errors import InputError
from pipeline.images import check_in_full
from pipeline.inputs import InputUploader, local_path, read_local
from pipeline.ledger import DEFAULT_PRIORITY
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
from pipeline.notify_target import check_target
from pipeline.runtime import Runtime
from pipeline.storage import S3_SCHEME, S3Uri
from pipeline.submit import MAX_INPUT_BYTES

__all__ = [
    "AUTO_CHECK_INPUTS_MAX_ROWS",
    "Submission",
    "Validation",
    "create",
    "submit",
    "validate",
]

# Without an explicit choice, batches up to this size have every image read and checked
# before anything is submitted.
AUTO_CHECK_INPUTS_MAX_ROWS = 200
INPUT_HINT = "fix or replace the image or mask, then submit again"
MISSING_FILE_HINT = (
    "give a path relative to the manifest's folder, an absolute path, or an s3:// URI"
)


@dataclass(frozen=True)
class Validation:
    """A manifest whose every row is valid and whose local input files exist.

    `source` is where it was read from: the absolute path of a local file, or the
    s3:// URI. With `inputs_checked`, every image and mask decoded and matched, and
    `estimated_credits` is the cost at the configured price per output megapixel;
    otherwise the estimate is None.
    """

    manifest: str
    source: str
    fmt: ManifestFormat
    rows: int
    inputs_checked: bool
    estimated_credits: float | None
    # Job id -> SHA-256 of the image and mask it was checked with.
    checked_inputs: Mapping[str, str] = field(default_factory=dict, repr=False)
    # The estimate split by the provider account each job runs on (inputs checked).
    estimated_credits_by_account: Mapping[str, float] = field(default_factory=dict)

    @property
    def estimated_usd(self) -> float | None:
        return None if self.estimated_credits is None else self.estimated_credits / CREDITS_PER_USD


@dataclass(frozen=True)
class Submission:
    """A batch created from a manifest: its id, where it came from and what it holds."""

    batch_id: str
    source: str
    rows: int
    inputs_checked: bool
    estimated_credits: float | None
    budget_credits: float | None = None
    priority: int = DEFAULT_PRIORITY
    notify_url: str | None = None

    @property
    def estimated_usd(self) -> float | None:
        return None if self.estimated_credits is None else self.estimated_credits / CREDITS_PER_USD


def validate(rt: Runtime, manifest: str, *, check_inputs: bool | None = None) -> Validation:
    """Check every row, every local file and (see the module doc) every input image.

    `check_inputs` None decodes the inputs of batches of up to
    `AUTO_CHECK_INPUTS_MAX_ROWS` rows; True or False decides for any size. Raises
    `ManifestInvalid` listing every problem, `InputError` for a manifest whose format
    cannot be told from its name.
    """
    fmt = detect_format(manifest)
    rows = _check_rows(rt, manifest, fmt)
    source = manifest if manifest.startswith(S3_SCHEME) else str(Path(manifest).resolve())
    if not (check_inputs or (check_inputs is None and rows <= AUTO_CHECK_INPUTS_MAX_ROWS)):
        return Validation(manifest, source, fmt, rows, False, None)
    megapixels, checked = _check_images(rt, manifest, fmt)
    price = rt.settings.price_credits_per_mp
    by_account = {account: mp * price for account, mp in megapixels.items()}
    credits = sum(by_account.values())
    return Validation(manifest, source, fmt, rows, True, credits, checked, by_account)


def create(
    rt: Runtime,
    validation: Validation,
    *,
    budget_usd: float | None = None,
    priority: int = DEFAULT_PRIORITY,
    notify_url: str | None = None,
) -> Submission:
    """Upload the manifest's local inputs and record its batch, queued for the dispatcher.

    The manifest is read again and every row checked as it is recorded (it may have
    changed since `validate`). `budget_usd` caps the batch's spend, `priority` is its share
    of free slots against other running batches, `notify_url` is told when it finishes.
    """
    manifest = validation.manifest
    budget = None if budget_usd is None else budget_usd * CREDITS_PER_USD
    batch_id = new_batch_id(rt.clock)
    uploader = InputUploader(rt.storage, rt.settings.bucket, _base_dir(manifest))
    checked = validation.checked_inputs
    with _rows(rt, manifest, validation.fmt) as rows:
        specs = (_spec(rt, batch_id, row, uploader, checked.get(row.job_id)) for row in rows)
        count = create_batch(
            rt,
            batch_id,
            specs,
            budget_credits=budget,
            priority=priority,
            source=validation.source,
            notify_url=notify_url,
        )
    return Submission(
        batch_id=batch_id,
        source=validation.source,
        rows=count,
        inputs_checked=validation.inputs_checked,
        estimated_credits=validation.estimated_credits,
        budget_credits=budget,
        priority=priority,
        notify_url=notify_url,
    )


def submit(
    rt: Runtime,
    manifest: str,
    *,
    check_inputs: bool | None = None,
    budget_usd: float | None = None,
    priority: int = DEFAULT_PRIORITY,
    notify_url: str | None = None,
) -> Submission:
    """`validate`, then `create`: the whole intake of one manifest (a `notify_url` is
    checked before either)."""
    if notify_url is not None:
        check_target(rt.settings, notify_url)
    validation = validate(rt, manifest, check_inputs=check_inputs)
    return create(rt, validation, budget_usd=budget_usd, priority=priority, notify_url=notify_url)


def _check_rows(rt: Runtime, manifest: str, fmt: ManifestFormat) -> int:
    """Every row valid and every local file present, else `ManifestInvalid` listing both
    kinds of problem in line order; the count."""
    base_dir = _base_dir(manifest)
    missing: list[Problem] = []
    unrouted: set[str] = set()
    count = 0
    try:
        with _rows(rt, manifest, fmt) as rows:
            for row in rows:
                count += 1
                missing.extend(_missing_files(manifest, row, base_dir))
                if row.account is None:
                    unrouted.add(row.params.finetune_id)
    except ManifestInvalid as invalid:
        problems = sorted([*invalid.problems, *missing], key=lambda problem: problem.line)
        raise ManifestInvalid(problems) from None
    if missing:
        raise ManifestInvalid(missing)
    for finetune_id in sorted(unrouted):  # asks the accounts now, before anything is recorded
        rt.router.account_for(None, finetune_id)
    return count


def _check_images(
    rt: Runtime, manifest: str, fmt: ManifestFormat
) -> tuple[dict[str, float], dict[str, str]]:
    """Every image decodes, masks match, alpha where no mask: the output megapixels on
    each account and each job's inputs digest, else `ManifestInvalid` listing every bad
    row."""
    base_dir = _base_dir(manifest)
    problems: list[Problem] = []
    megapixels: dict[str, float] = {}
    checked: dict[str, str] = {}
    with _rows(rt, manifest, fmt) as rows:
        for row in rows:
            try:
                image = _read_input(rt, row.image, base_dir)
                mask = _read_input(rt, row.mask, base_dir) if row.mask else None
                info, checked[row.job_id] = check_in_full(image, mask)
                account = rt.router.account_for(row.account, row.params.finetune_id)
                megapixels[account] = megapixels.get(account, 0.0) + info.megapixels
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
            message = f"local file {str(path)!r} does not exist"
            yield Problem(source, row.line, name, message, MISSING_FILE_HINT)


def _spec(
    rt: Runtime,
    batch_id: str,
    row: ManifestRow,
    uploader: InputUploader,
    checked_inputs: str | None,
) -> JobSpec:
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
        image_uri=uploader.resolve(row.image),
        mask_uri=uploader.resolve(row.mask) if row.mask else None,
        output_uri=str(output),
        params=row.params,
        tags=row.tags,
        checked_inputs=checked_inputs,
        account=rt.router.account_for(row.account, row.params.finetune_id),
        composite=row.composite.over(rt.settings.composite),
    )


@contextlib.contextmanager
def _rows(rt: Runtime, manifest: str, fmt: ManifestFormat) -> Iterator[Iterator[ManifestRow]]:
    """The manifest's validated rows, streamed (one pass; `ManifestInvalid` at the end)."""
    with _lines(rt, manifest) as lines:
        yield validate_rows(
            lines,
            source=manifest,
            fmt=fmt,
            bucket=rt.settings.bucket,
            accounts=rt.settings.accounts.names,
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
