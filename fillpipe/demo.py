"""`fillpipe demo`: sample product photos through the whole pipeline, end to end.

Uses the stack the environment names (a sourced stack.env), else starts an embedded one
for the run; trains a small brand finetune on the provider, uploads sample images and
masks, submits one batch, shows progress, prints where every output is and writes a
before/after contact sheet. Progress and chatter go to stderr; the batch, its jobs, the
results manifest and the contact sheet go to stdout, as lines or (`as_json`) one JSON
document.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from fillpipe.output import columns, cost_text, data, emit_json, progress_console, say, usd
from fillpipe.progress import wait_for_batch
from fillpipe.samples import (
    Sample,
    SheetRow,
    contact_sheet,
    finetune_zip,
    make_finetune_images,
    make_samples,
)
from fillpipe.stack import SERVICES, EmbeddedStack
from pipeline.batches import create_batch, default_output_uri, new_batch_id
from pipeline.errors import PermanentError, ProviderUnavailable, RetryableError
from pipeline.images import check_in_full
from pipeline.models import EditParams, JobRecord, JobRef, JobSpec, OutputFormat
from pipeline.provider import TaskStatus
from pipeline.reports import result_row, write_results
from pipeline.runtime import Runtime
from pipeline.settings import Settings
from pipeline.states import JobState
from pipeline.storage import S3Uri

DEMO_TIMEOUT_S = 600.0
FINETUNE_TIMEOUT_S = 120.0
POLL_INTERVAL_S = 0.25
SAMPLE_SIZE_PX = 512
DEMO_FINETUNE_STRENGTH = 1.2
DEMO_SOURCE = "demo"
EXIT_FAILURE = 1


@dataclass(frozen=True)
class DemoRun:
    """What a demo run made: its finetune, batch, jobs, results manifest and sheet."""

    finetune_id: str
    batch_id: str
    records: list[JobRecord]
    results_uri: str
    contact_sheet: Path

    @property
    def failed(self) -> int:
        return sum(record.state is not JobState.STORED for record in self.records)


def run_demo(
    *,
    jobs: int,
    out_dir: Path,
    state_dir: Path,
    environ: Mapping[str, str],
    as_json: bool = False,
    trigger: bool = False,
) -> None:
    """Run `jobs` sample edits, print what they made; raise `SystemExit(1)` if any job
    does not end stored. With `trigger`, the samples are dropped into the bucket under
    a trigger rule instead of submitted (`fillpipe.demo_trigger`)."""
    from fillpipe.demo_trigger import run_trigger_demo

    with _stack_env(state_dir, environ) as env:
        rt = Runtime.from_settings(Settings.from_environ(env))
        try:
            if trigger:
                run = run_trigger_demo(rt, jobs=jobs, out_dir=out_dir, state_dir=state_dir)
            else:
                run = _run(rt, jobs=jobs, out_dir=out_dir)
        finally:
            rt.close()
    if as_json:
        emit_json(demo_json(run))
    else:
        for line in demo_lines(run):
            data(line)
    if run.failed:
        raise SystemExit(EXIT_FAILURE)


@contextlib.contextmanager
def _stack_env(state_dir: Path, environ: Mapping[str, str]) -> Iterator[Mapping[str, str]]:
    """The environment of a running stack: the caller's, else an embedded one's."""
    if environ.get("FILLPIPE_REDIS_URL"):
        say("Using the stack named by the environment.")
        yield environ
        return
    say(f"Starting the embedded stack in {state_dir} …")
    # The stack stops when the demo ends: nobody would have time to open a dashboard.
    services = [service for service in SERVICES if service != "dashboard"]
    with EmbeddedStack(state_dir, environ, services=services) as stack:
        yield {**environ, **stack.env}


def _run(rt: Runtime, *, jobs: int, out_dir: Path) -> DemoRun:
    finetune_id = train_demo_finetune(rt)
    batch_id = new_batch_id(rt.clock)
    samples = make_samples(jobs, size_px=SAMPLE_SIZE_PX)
    specs = [
        sample_spec(rt, batch_id, sample, finetune_id, index)
        for index, sample in enumerate(samples, start=1)
    ]
    create_batch(rt, batch_id, specs, source=DEMO_SOURCE)
    say(f"Batch {batch_id}: {len(specs)} jobs submitted.")
    wait_for_demo_batch(rt, batch_id)
    records = list(rt.ledger.jobs.of_batch(batch_id))
    results_uri = write_results(rt, batch_id)
    by_id = {record.ref.job_id: record for record in records}
    pairs = [(sample, by_id.get(sample.name)) for sample in samples]
    sheet = write_contact_sheet(rt, pairs, out_dir / f"contact-sheet-{batch_id}.png")
    return DemoRun(finetune_id, batch_id, records, str(results_uri), sheet)


def wait_for_demo_batch(rt: Runtime, batch_id: str) -> None:
    """Progress on stderr until every job of the batch has ended (`DEMO_TIMEOUT_S` at most)."""
    wait_for_batch(
        rt.ledger,
        batch_id,
        progress_console(),
        timeout_s=DEMO_TIMEOUT_S,
    )


def demo_json(run: DemoRun) -> dict[str, object]:
    """`demo --json`: the run as one document; each job as `fillpipe results` shows it."""
    cost = sum(record.cost_credits or 0.0 for record in run.records)
    return {
        "batch": run.batch_id,
        "finetune": run.finetune_id,
        "jobs": [result_row(record) for record in run.records],
        "stored": len(run.records) - run.failed,
        "failed": run.failed,
        "cost_credits": cost,
        "cost_usd": usd(cost),
        "results": run.results_uri,
        "contact_sheet": str(run.contact_sheet),
    }


def demo_lines(run: DemoRun) -> list[str]:
    """`demo`: the batch, one aligned line per job (output URI or error last), the
    results manifest and the contact sheet."""
    cost = sum(record.cost_credits or 0.0 for record in run.records)
    stored = len(run.records) - run.failed
    jobs = [("job", "state", "credits", "output or error")]
    for record in run.records:
        row = result_row(record)
        credits = "" if record.cost_credits is None else f"{record.cost_credits:g}"
        jobs.append((row["id"], row["state"], credits, row["output"] or row["error"] or ""))
    return [
        f"batch {run.batch_id}: {stored}/{len(run.records)} stored, {cost_text(cost)}",
        f"finetune {run.finetune_id}",
        *columns(jobs, right=[2]),
        f"results manifest {run.results_uri}",
        f"contact sheet {run.contact_sheet}",
    ]


def train_demo_finetune(rt: Runtime) -> str:
    """`train_finetune`, with a spinner on stderr."""
    with progress_console().status("Training the demo brand finetune …"):
        finetune_id = train_finetune(rt)
    say(f"Finetune {finetune_id} is ready.")
    return finetune_id


def train_finetune(rt: Runtime, account: str | None = None) -> str:
    """A small brand-style finetune, trained on `account` (the default one if None)
    and waited for."""
    archive = finetune_zip(make_finetune_images())
    provider = rt.providers[account] if account else rt.providers.default
    finetune_id = provider.create_finetune(
        archive, comment="fillpipe demo brand style", trigger_word="FPBRAND"
    )
    polling_url = provider.fallback_polling_url(finetune_id)
    deadline = time.monotonic() + FINETUNE_TIMEOUT_S
    while time.monotonic() < deadline:
        status = provider.get_result(polling_url).status
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
        composite=rt.settings.composite,
    )


def write_contact_sheet(
    rt: Runtime, pairs: Sequence[tuple[Sample, JobRecord | None]], path: Path
) -> Path:
    """Before, mask and after of each sample (its job's output, or why there is none)."""
    rows = []
    for sample, record in pairs:
        stored = record is not None and record.state is JobState.STORED
        after = (
            rt.storage.read(
                S3Uri.parse(record.spec.output_uri), max_bytes=rt.settings.result_max_bytes
            )
            if record is not None and stored
            else None
        )
        note = "no job" if record is None else record.state.value if stored else record.error
        rows.append(
            SheetRow(
                label=sample.name,
                before_png=sample.image_png,
                mask_png=sample.mask_png,
                after=after,
                note=_with_qa(note or "", record),
                provider=provider_image(rt, record) if record is not None and stored else None,
            )
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(contact_sheet(rows))
    return path.resolve()


def provider_image(rt: Runtime, record: JobRecord) -> bytes | None:
    """The provider's own image of a stored job, read again from the provider while it
    still serves it (fillpipe keeps only the output); None once it no longer does."""
    if record.polling_url is None:
        return None
    try:
        result = rt.providers[record.account].get_result(record.polling_url)
        return None if result.sample_url is None else rt.fetcher.fetch(result.sample_url)
    except (RetryableError, PermanentError):
        return None


def _with_qa(note: str, record: JobRecord | None) -> str:
    """The note, with the output's drift and seam figures when it has them."""
    qa = None if record is None else record.qa
    if not qa:
        return note
    figures = f"drift {qa['drift_mean']:.1f} (p99 {qa['drift_p99']:.0f}), seam {qa['seam']:.1f}"
    return f"{note}\n{figures}{' FLAGGED' if qa.get('flagged') else ''}"
