"""Validation + enqueue rate of `fillpipe submit` beside raw Celery `send_task`.

Starts an embedded Valkey and SeaweedFS S3 server on free 127.0.0.1 ports in a temporary
dir, uploads a few small image+mask pairs, writes a `--rows` JSONL manifest pointing at
them, then measures, each phase in its own spawned process (so each has its own peak
RSS) with Redis flushed in between: (a) `validate_rows` over the file alone, (b) the
whole `run_submit` as the CLI runs it (no worker consuming), (c) `app.send_task` of as
many messages with the same Celery config. Figures only: nothing here asserts on time.
Run: `python -m bench.bench_enqueue [--rows 100000]`.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import multiprocessing
import resource
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from bench.enqueue_inputs import HOST, embedded_servers, job_id, upload_inputs, write_manifest

QUEUE_SUBMIT = "submit"
# How long past the time cap a phase process may take to report before it is stopped.
REPORT_GRACE_S = 30.0
POLL_INTERVAL_S = 0.5
TARGET_ROWS_PER_S = 5000.0
TARGET_PEAK_RSS_MB = 300.0


@dataclass
class PhaseResult:
    """What one phase measured, as its process reports it."""

    rows: int
    elapsed_s: float
    peak_rss_mb: float = float("nan")
    capped: bool = False
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.rows / self.elapsed_s if self.elapsed_s else 0.0


# ------------------------------------------------------------ the phases (in a child)


def phase_validate(manifest: str, environ: dict[str, str], rows: int, deadline: float) -> dict:
    """Pass 1 alone: `validate_rows` over the file, as `fillpipe submit` runs it."""
    from pipeline.manifest import validate_rows
    from pipeline.settings import Settings

    bucket = Settings.from_environ(environ).bucket
    count = 0
    with open(manifest, encoding="utf-8", newline="") as lines:
        for _ in validate_rows(lines, source=manifest, fmt="jsonl", bucket=bucket):
            count += 1
            if time.perf_counter() > deadline:
                return {"rows": count, "capped": True}
    return {"rows": count}


def phase_submit(manifest: str, environ: dict[str, str], rows: int, deadline: float) -> dict:
    """The whole `run_submit(dry_run=False, wait=False)`, with its two steps timed:
    `intake.validate` and `intake.create`."""
    import fillpipe.submit as submit
    from pipeline import intake

    splits: dict[str, float] = {}
    for name in ("validate", "create"):
        setattr(intake, name, _timed(name, getattr(intake, name), splits))
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        submit.run_submit(manifest, environ, submit.SubmitOptions(dry_run=False, wait=False))
    return {"rows": rows, "batch_id": printed.getvalue().strip(), "splits": splits}


def phase_send_task(manifest: str, environ: dict[str, str], rows: int, deadline: float) -> dict:
    """Raw Celery: `app.send_task("fillpipe.submit", args=[batch, id])` in a loop."""
    from pipeline.settings import Settings
    from workers.app import TASK_SUBMIT, create_celery_app

    app = create_celery_app(Settings.from_environ(environ))
    batch_id = "b20260101-bench000"
    for number in range(rows):
        app.send_task(TASK_SUBMIT, args=[batch_id, job_id(number)])
        if time.perf_counter() > deadline:
            return {"rows": number + 1, "capped": True}
    return {"rows": rows}


PHASES: dict[str, Callable[[str, dict[str, str], int, float], dict]] = {
    "validate": phase_validate,
    "submit": phase_submit,
    "send_task": phase_send_task,
}


def _timed(name: str, func: Callable[..., Any], splits: dict[str, float]) -> Callable[..., Any]:
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return func(*args, **kwargs)
        finally:
            splits[name] = time.perf_counter() - started

    return timed


def child(
    conn: Connection,
    phase: str,
    manifest: str,
    environ: dict[str, str],
    rows: int,
    time_cap_s: float,
) -> None:
    """A spawned process's entry point: run one phase, send its figures back."""
    started = time.perf_counter()
    try:
        outcome = PHASES[phase](manifest, environ, rows, started + time_cap_s)
    except Exception as error:  # reported in the table rather than lost in a child
        outcome = {"rows": 0, "error": f"{type(error).__name__}: {error}"}
    outcome["elapsed_s"] = time.perf_counter() - started
    outcome["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    conn.send(outcome)
    conn.close()


def run_phase(
    phase: str, manifest: str, environ: dict[str, str], rows: int, time_cap_s: float
) -> PhaseResult:
    """One phase in a fresh spawned process; stopped (partial figures) past the cap."""
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(
        target=child, args=(sender, phase, manifest, environ, rows, time_cap_s)
    )
    started = time.perf_counter()
    process.start()
    sender.close()
    deadline = started + time_cap_s + REPORT_GRACE_S
    try:
        while not receiver.poll(POLL_INTERVAL_S):
            if not process.is_alive() or time.perf_counter() > deadline:
                break
        outcome: dict[str, Any] | None = None
        with contextlib.suppress(EOFError):  # the process died without reporting
            outcome = receiver.recv() if receiver.poll() else None
        if outcome:
            elapsed_s = outcome.pop("elapsed_s")
            peak_rss_mb = outcome.pop("peak_rss_mb")
            return PhaseResult(
                outcome.pop("rows"), elapsed_s, peak_rss_mb, outcome.pop("capped", False), outcome
            )
        alive = process.is_alive()
        detail = {} if alive else {"error": f"the phase process exited ({process.exitcode})"}
        return PhaseResult(0, time.perf_counter() - started, capped=alive, detail=detail)
    finally:
        process.join(timeout=REPORT_GRACE_S)
        if process.is_alive():
            process.terminate()
            process.join()


# -------------------------------------------------------------------- checks, report


def queue_length(environ: dict[str, str]) -> int:
    import redis

    with redis.Redis.from_url(environ["FILLPIPE_REDIS_URL"]) as client:
        return int(client.llen(QUEUE_SUBMIT))


def flush_redis(environ: dict[str, str]) -> None:
    import redis

    with redis.Redis.from_url(environ["FILLPIPE_REDIS_URL"]) as client:
        client.flushdb()


def check_submit(environ: dict[str, str], result: PhaseResult) -> str:
    """What the ledger, the broker and S3 hold after `run_submit`."""
    from pipeline.runtime import Runtime
    from pipeline.settings import Settings
    from pipeline.states import JobState
    from pipeline.storage import S3Uri

    queued = queue_length(environ)
    batch_id = result.detail.get("batch_id", "")
    if not batch_id:
        result.rows = queued
        return f"submit checks: no batch id (stopped), queue `{QUEUE_SUBMIT}` {queued} messages"
    settings = Settings.from_environ(environ)
    rt = Runtime.from_settings(settings)
    try:
        summary = rt.ledger.batches.summary(batch_id)
        listed = sum(1 for _ in rt.ledger.jobs.ids(batch_id))
        submits = sum(entry.task == "submit" for entry in rt.ledger.outbox.waiting())
        manifest = f"s3://{settings.bucket}/outputs/{batch_id}/manifest.jsonl"
        uri = S3Uri.parse(manifest)
        size = rt.storage.client.head_object(Bucket=uri.bucket, Key=uri.key)
    finally:
        rt.close()
    total = summary.total if summary else 0
    waiting = summary.counts.get(JobState.QUEUED, 0) if summary else 0
    return (
        f"submit checks: batch {batch_id}: ledger total {total}, {waiting} queued, "
        f"{listed} job ids in line; {submits} submits in the outbox (one per free slot); "
        f"queue `{QUEUE_SUBMIT}` {queued} message(s) (no worker relays them here); "
        f"manifest.jsonl in S3 {size['ContentLength'] / 2**20:.1f} MB"
    )


PHASE_NAMES = {
    "validate": "validate_rows only",
    "submit": "fillpipe submit (whole)",
    "send_task": "celery send_task (raw)",
}


def report(
    results: dict[str, PhaseResult],
    checks: list[str],
    args: argparse.Namespace,
    manifest_bytes: int,
) -> None:
    """The phases' table, the submit's steps, the checks, then the targets."""
    print(
        f"enqueue bench: {args.rows}-row JSONL manifest ({manifest_bytes / 2**20:.1f} MB, "
        f"inputs in S3), Valkey + SeaweedFS on {HOST}, time cap {args.time_cap_s:g} s"
    )
    print_phases(results)
    print_submit_steps(results["submit"].detail.get("splits", {}))
    for line in checks:
        print(line)
    print_targets(results["submit"], results["send_task"])


def print_phases(results: dict[str, PhaseResult]) -> None:
    """One line per phase: rows, time, rate, peak RSS, and whether it stopped or failed."""
    print(f"{'':28}{'rows':>8}{'time s':>9}{'rows/s':>10}{'peak RSS MB':>13}")
    for phase, name in PHASE_NAMES.items():
        result = results[phase]
        flag = "  (stopped at the time cap)" if result.capped else ""
        flag += f"  ERROR {result.detail['error']}" if "error" in result.detail else ""
        print(
            f"{name:28}{result.rows:>8}{result.elapsed_s:>9.2f}{result.rate:>10.0f}"
            f"{result.peak_rss_mb:>13.1f}{flag}"
        )


def print_submit_steps(splits: dict[str, float]) -> None:
    """The time of the submit's two steps, when it got through them."""
    if splits:
        print(
            "submit steps: validate pass {validate:.2f} s, create_batch (ledger + "
            "manifest.jsonl, in line for the dispatcher) {create:.2f} s".format(**splits)
        )


def print_targets(submit: PhaseResult, raw: PhaseResult) -> None:
    """The submit's rate and peak RSS against their targets, and its rate beside Celery's."""
    rate_ok = "met" if submit.rate >= TARGET_ROWS_PER_S else "NOT met"
    rss_ok = "met" if submit.peak_rss_mb <= TARGET_PEAK_RSS_MB else "NOT met"
    print(
        f"targets: submit {submit.rate:.0f} rows/s vs >= {TARGET_ROWS_PER_S:.0f} ({rate_ok}); "
        f"peak RSS {submit.peak_rss_mb:.1f} MB vs <= {TARGET_PEAK_RSS_MB:.0f} ({rss_ok})"
    )
    ratio = submit.rate / raw.rate if raw.rate else float("nan")
    print(f"submit rows/s / send_task msgs/s = {ratio:.2f}x")


def measure(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="fillpipe-bench-") as tmp:
        root = Path(tmp)
        with embedded_servers(root) as environ:
            manifest = root / "manifest.jsonl"
            manifest_bytes = write_manifest(manifest, args.rows, upload_inputs(environ))
            results: dict[str, PhaseResult] = {}
            checks: list[str] = []
            for phase in PHASES:
                flush_redis(environ)
                results[phase] = run_phase(
                    phase, str(manifest), environ, args.rows, args.time_cap_s
                )
                if phase == "submit":
                    checks.append(check_submit(environ, results[phase]))
                elif phase == "send_task":
                    queued = queue_length(environ)
                    checks.append(f"send_task check: queue `{QUEUE_SUBMIT}` {queued} messages")
            flush_redis(environ)
    report(results, checks, args, manifest_bytes)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="manifest rows (100000)")
    parser.add_argument("--time-cap-s", type=float, default=300.0, help="per phase (300)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    measure(parse_args(argv))


if __name__ == "__main__":
    main()
