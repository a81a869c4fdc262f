"""`fillpipe demo`: sample product photos through the whole pipeline, end to end.

Uses the stack the environment names (a sourced stack.env), else starts an embedded one
for the run; trains a small brand finetune on the provider, uploads sample images and
masks, submits one batch, shows progress, prints where every output is and writes a
before/after contact sheet.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from fillpipe.progress import wait_for_batch
from fillpipe.samples import (
    Sample,
    SheetRow,
    contact_sheet,
    finetune_zip,
    make_finetune_images,
    make_samples,
)
from fillpipe.stack import EmbeddedStack
from pipeline.batches import create_batch, default_output_uri, new_batch_id
from pipeline.errors import ProviderUnavailable
from pipeline.images import check_in_full
from pipeline.models import EditParams, JobRecord, JobRef, JobSpec, OutputFormat
from pipeline.provider import TaskStatus
from pipeline.reports import write_results
from pipeline.runtime import Runtime
from pipeline.settings import Settings
from pipeline.states import JobState
from pipeline.storage import S3Uri

DEMO_TIMEOUT_S = 600.0
FINETUNE_TIMEOUT_S = 120.0
POLL_INTERVAL_S = 0.25
SAMPLE_SIZE_PX = 512
DEMO_FINETUNE_STRENGTH = 1.2
EXIT_FAILURE = 1


def run_demo(*, jobs: int, out_dir: Path, state_dir: Path, environ: Mapping[str, str]) -> None:
    """Run `jobs` sample edits; raise `SystemExit(1)` if any does not end stored."""
    console = Console()
    with _stack_env(state_dir, environ, console) as env:
        rt = Runtime.from_settings(Settings.from_environ(env))
        try:
            failed = _run(rt, jobs=jobs, out_dir=out_dir, console=console)
        finally:
            rt.close()
    if failed:
        raise SystemExit(EXIT_FAILURE)


@contextlib.contextmanager
def _stack_env(
    state_dir: Path, environ: Mapping[str, str], console: Console
) -> Iterator[Mapping[str, str]]:
    """The environment of a running stack: the caller's, else an embedded one's."""
    if environ.get("FILLPIPE_REDIS_URL"):
        console.print("Using the stack named by the environment.")
        yield environ
        return
    console.print(f"Starting the embedded stack in {state_dir} …")
    with EmbeddedStack(state_dir, environ) as stack:
        yield {**environ, **stack.env}


def _run(rt: Runtime, *, jobs: int, out_dir: Path, console: Console) -> int:
    finetune_id = _train_finetune(rt, console)
    batch_id = new_batch_id(rt.clock)
    samples = make_samples(jobs, size_px=SAMPLE_SIZE_PX)
    specs = [
        sample_spec(rt, batch_id, sample, finetune_id, index)
        for index, sample in enumerate(samples, start=1)
    ]
    create_batch(rt, batch_id, specs, source="demo")
    console.print(f"Batch [bold]{batch_id}[/bold]: {len(specs)} jobs submitted.")
    wait_for_batch(
        rt.ledger,
        batch_id,
        console,
        timeout_s=DEMO_TIMEOUT_S,
        slots=rt.settings.provider_slots,
    )
    records = list(rt.ledger.jobs.of_batch(batch_id))
    results_uri = write_results(rt, batch_id)
    console.print(_summary_table(records))
    console.print(f"Results manifest: {results_uri}")
    sheet = _write_contact_sheet(rt, samples, records, out_dir / f"contact-sheet-{batch_id}.png")
    console.print(f"Contact sheet: [bold]{sheet}[/bold]")
    return sum(record.state is not JobState.STORED for record in records)


def _train_finetune(rt: Runtime, console: Console) -> str:
    with console.status("Training the demo brand finetune …"):
        finetune_id = train_finetune(rt)
    console.print(f"Finetune [bold]{finetune_id}[/bold] is ready.")
    return finetune_id


def train_finetune(rt: Runtime) -> str:
    """A small brand-style finetune, trained on the provider and waited for."""
    archive = finetune_zip(make_finetune_images())
    finetune_id = rt.provider.create_finetune(
        archive, comment="fillpipe demo brand style", trigger_word="FPBRAND"
    )
    polling_url = rt.provider.fallback_polling_url(finetune_id)
    deadline = time.monotonic() + FINETUNE_TIMEOUT_S
    while time.monotonic() < deadline:
        status = rt.provider.get_result(polling_url).status
        if status is TaskStatus.READY:
            return finetune_id
        if status.is_final:
            raise ProviderUnavailable(f"finetune training ended {status.value}")
        time.sleep(POLL_INTERVAL_S)
    raise ProviderUnavailable(f"finetune not ready after {FINETUNE_TIMEOUT_S:.0f} s")


def sample_spec(
    rt: Runtime,
    batch_id: str,
    sample: Sample,
    finetune_id: str,
    index: int,
    *,
    tags: Mapping[str, str] | None = None,
    output_format: OutputFormat = "png",
    check_inputs: bool = True,
) -> JobSpec:
    """Upload a sample's image and mask for `batch_id`; its job (seed = `index`).

    With `check_inputs` the inputs are decoded in full first and the job records their
    digest, as `fillpipe submit` does for small manifests; without, the job's submit
    task decodes them, as for large ones.
    """
    prefix = f"s3://{rt.settings.bucket}/inputs/{batch_id}/{sample.name}"
    image_uri, mask_uri = f"{prefix}.png", f"{prefix}-mask.png"
    rt.storage.write(S3Uri.parse(image_uri), sample.image_png, content_type="image/png")
    rt.storage.write(S3Uri.parse(mask_uri), sample.mask_png, content_type="image/png")
    checked_inputs = check_in_full(sample.image_png, sample.mask_png)[1] if check_inputs else None
    params = EditParams(
        prompt=sample.prompt,
        finetune_id=finetune_id,
        finetune_strength=DEMO_FINETUNE_STRENGTH,
        seed=index,
        output_format=output_format,
    )
    return JobSpec(
        ref=JobRef(batch_id, sample.name),
        image_uri=image_uri,
        mask_uri=mask_uri,
        output_uri=default_output_uri(rt, batch_id, sample.name, params.extension),
        params=params,
        tags=dict(tags or {"demo": "true"}),
        checked_inputs=checked_inputs,
    )


def _summary_table(records: Sequence[JobRecord]) -> Table:
    table = Table(title="fillpipe demo")
    table.add_column("job")
    table.add_column("state")
    table.add_column("output", overflow="fold")
    table.add_column("credits", justify="right")
    for record in records:
        stored = record.state is JobState.STORED
        table.add_row(
            record.ref.job_id,
            record.state.value,
            record.spec.output_uri if stored else (record.error or ""),
            "" if record.cost_credits is None else f"{record.cost_credits:g}",
        )
    return table


def _write_contact_sheet(
    rt: Runtime, samples: Sequence[Sample], records: Sequence[JobRecord], path: Path
) -> Path:
    by_id = {record.ref.job_id: record for record in records}
    rows = []
    for sample in samples:
        record = by_id[sample.name]
        stored = record.state is JobState.STORED
        after = (
            rt.storage.read(
                S3Uri.parse(record.spec.output_uri), max_bytes=rt.settings.result_max_bytes
            )
            if stored
            else None
        )
        rows.append(
            SheetRow(
                label=sample.name,
                before_png=sample.image_png,
                mask_png=sample.mask_png,
                after=after,
                note=record.state.value if stored else (record.error or ""),
            )
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(contact_sheet(rows))
    return path.resolve()
