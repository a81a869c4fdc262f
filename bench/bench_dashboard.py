"""Server time of the dashboard's pages for a 100,000-job batch, beside a 100-job one.

Starts an embedded Valkey and SeaweedFS S3 server on 127.0.0.1 (`bench.enqueue_inputs`),
uploads `--previews` distinct 1-megapixel JPEGs, and records in the ledger a batch of
`--jobs` jobs whose images cycle through them, `--ended` of which end (`--failed` of
those failed, the rest stored, each through the states a real job passes), and a batch
of 100 jobs ended in the same proportion, the baseline. Then it runs `fillpipe dashboard`
as a subprocess, as the stack does, and asks each page `--requests` times in turn (after
two unmeasured asks): the time the app took for each, from its `Server-Timing` header,
and the time the client waited. Figures only: nothing here asserts on time.
Run: `python -m bench.bench_dashboard`.
"""

from __future__ import annotations

import argparse
import io
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
from PIL import Image

from bench.enqueue_inputs import BUCKET, HOST, embedded_servers
from fillpipe.ports import free_ports
from pipeline.ledger import Ledger, PoolLimits, redis_client
from pipeline.models import EditParams, JobRef, JobSpec
from pipeline.settings import Settings
from pipeline.states import JobState
from pipeline.storage import S3Uri, Storage

TARGET_SERVER_MS = 200.0
BASELINE_JOBS = 100
# Slots while the bench moves jobs along: many at once, so few rounds.
SETUP_SLOTS = 500
PREVIEW_PX = 1024
STARTUP_TIMEOUT_S = 30.0
TO_STORED = (JobState.SUBMITTING, JobState.AWAITING_RESULT, JobState.COLLECTING)


@dataclass(frozen=True)
class Figures:
    """One page's times over its requests, in ms, and the size of its answer."""

    server_ms: list[float]
    client_ms: list[float]
    size_bytes: int

    @staticmethod
    def p(values: list[float], q: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- the world ---------------------------------------------------------------------------


def upload_previews(storage: Storage, count: int) -> list[str]:
    """`count` distinct 1-megapixel JPEGs in S3; their URIs."""
    uris = []
    for index in range(count):
        image = Image.radial_gradient("L").resize((PREVIEW_PX, PREVIEW_PX)).convert("RGB")
        tint = Image.new("RGB", image.size, (40 * index % 255, 90, 200 - 7 * index % 200))
        out = io.BytesIO()
        Image.blend(image, tint, 0.5).save(out, "JPEG", quality=90)
        uri = f"s3://{BUCKET}/bench-previews/{index}.jpg"
        storage.write(S3Uri.parse(uri), out.getvalue(), content_type="image/jpeg")
        uris.append(uri)
    return uris


def record_batch(ledger: Ledger, batch_id: str, jobs: int, images: list[str]) -> None:
    """A batch of `jobs` jobs on the account of its own name (so its jobs are ended alone)."""

    def specs() -> Iterator[JobSpec]:
        for index in range(jobs):
            yield JobSpec(
                ref=JobRef(batch_id, f"item-{index:06d}"),
                image_uri=images[index % len(images)],
                mask_uri=None,
                output_uri=images[(index + 1) % len(images)],
                params=EditParams(prompt="a linen backdrop", finetune_id="acme-brand-v3"),
                account=batch_id,
            )

    ledger.batches.create(batch_id, specs())


def end_jobs(ledger: Ledger, account: str, ended: int, failed: int) -> None:
    """End `ended` of the account's dispatched jobs as the dispatcher hands them out, the
    first `failed` failed, the rest stored; each end hands its slot to the next job."""
    picked = ledger.keys.pool(account).picked
    done = 0
    while done < ended:
        keys = ledger.redis.smembers(picked)
        if not keys:
            raise RuntimeError("no job dispatched: the batch has no queued job left")
        for key in sorted(keys)[: ended - done]:
            end_job(ledger, ledger.keys.ref(key), JobState.FAILED if done < failed else None)
            done += 1


def end_job(ledger: Ledger, ref: JobRef, failed: JobState | None) -> None:
    if failed is not None:
        ledger.jobs.transition(
            ref,
            from_states=[JobState.DISPATCHED],
            to_state=JobState.FAILED,
            fields={"error": "the provider said: Content Moderated"},
        )
        return
    source = JobState.DISPATCHED
    for step in (*TO_STORED, JobState.STORED):
        cost = 8.4 if step is JobState.STORED else None
        ledger.jobs.transition(ref, from_states=[source], to_state=step, cost_delta=cost)
        source = step


def build_world(environ: dict[str, str], args: argparse.Namespace) -> None:
    """The two batches, `big` and `small`, recorded and partly ended."""
    settings = Settings.from_environ(environ)
    pools = {"big": PoolLimits(SETUP_SLOTS), "small": PoolLimits(SETUP_SLOTS)}
    ledger = Ledger(redis_client(settings.redis_url), pools=pools)
    images = upload_previews(Storage.from_settings(settings), args.previews)
    started = time.monotonic()
    try:
        record_batch(ledger, "small", BASELINE_JOBS, images)
        small_ended = round(BASELINE_JOBS * args.ended / args.jobs)
        end_jobs(ledger, "small", small_ended, round(small_ended * args.failed / args.ended))
        record_batch(ledger, "big", args.jobs, images)
        end_jobs(ledger, "big", args.ended, args.failed)
    finally:
        ledger.close()
    took_s = time.monotonic() - started
    print(f"setup: {args.jobs + BASELINE_JOBS} jobs recorded and moved in {took_s:.1f} s")


# -- the dashboard and its pages ---------------------------------------------------------


def start_dashboard(environ: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    """`fillpipe dashboard` on `port`, once its /healthz answers."""
    command = [sys.executable, "-m", "fillpipe", "dashboard", "--host", HOST, "--port", str(port)]
    with log.open("wb") as out:
        server = subprocess.Popen(command, env=environ, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://{HOST}:{port}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.1)
    server.terminate()
    raise RuntimeError(f"the dashboard did not start: {log.read_text()[-2000:]}")


def pages(args: argparse.Namespace) -> dict[str, tuple[str, bool]]:
    """What is measured: label -> (path, whether it is a page of the big batch)."""
    per_page = 50
    last = -(-args.jobs // per_page)
    failed_last = max(1, -(-args.failed // per_page))
    return {
        f"batch page, {BASELINE_JOBS} jobs (baseline)": ("/batches/small", False),
        f"batch page 1, {args.jobs:,} jobs": ("/batches/big", True),
        f"batch page {last // 2} (middle)": (f"/batches/big?page={last // 2}", True),
        f"batch page {last} (last)": (f"/batches/big?page={last}", True),
        "failed jobs, page 1": ("/batches/big?failed=1", True),
        f"failed jobs, page {failed_last} (last)": (
            f"/batches/big?failed=1&page={failed_last}",
            True,
        ),
        "batch list": ("/", False),
        f"API: batch page {last // 2}": (f"/api/batches/big?page={last // 2}", True),
    }


def measure_page(client: httpx.Client, path: str, requests: int) -> Figures:
    for _ in range(2):
        client.get(path).raise_for_status()
    server, waited, size = [], [], 0
    for _ in range(requests):
        started = time.perf_counter()
        answer = client.get(path)
        waited.append((time.perf_counter() - started) * 1000)
        answer.raise_for_status()
        server.append(server_ms(answer))
        size = len(answer.content)
    return Figures(server, waited, size)


def measure_previews(client: httpx.Client, count: int) -> tuple[Figures, Figures]:
    """The first read of `count` distinct previews (from S3, made here), then again (kept)."""
    figures = []
    for _ in range(2):
        server, waited, size = [], [], 0
        for index in range(count):
            started = time.perf_counter()
            answer = client.get(f"/batches/big/thumbs/image?job=item-{index:06d}")
            waited.append((time.perf_counter() - started) * 1000)
            answer.raise_for_status()
            server.append(server_ms(answer))
            size = len(answer.content)
        figures.append(Figures(server, waited, size))
    return figures[0], figures[1]


def server_ms(answer: httpx.Response) -> float:
    """The app's own time for a request, from its `Server-Timing: app;dur=MS` header."""
    return float(answer.headers["server-timing"].split("dur=")[1])


# -- the report --------------------------------------------------------------------------


def report(args: argparse.Namespace, results: dict[str, Figures], big: set[str]) -> None:
    print(
        f"dashboard bench: a batch of {args.jobs:,} jobs ({args.ended - args.failed:,} stored, "
        f"{args.failed:,} failed) beside one of {BASELINE_JOBS}, Valkey + SeaweedFS on {HOST}, "
        f"{args.requests} requests a page"
    )
    print(f"{'':34}{'server p50':>11}{'p99 ms':>8}{'client p50':>12}{'p99 ms':>8}{'KiB':>7}")
    for label, figures in results.items():
        print(
            f"{label:34}{Figures.p(figures.server_ms, 0.5):>11.1f}"
            f"{Figures.p(figures.server_ms, 0.99):>8.1f}{Figures.p(figures.client_ms, 0.5):>12.1f}"
            f"{Figures.p(figures.client_ms, 0.99):>8.1f}{figures.size_bytes / 1024:>7.1f}"
        )
    worst = max(Figures.p(results[label].server_ms, 0.99) for label in big)
    verdict = "met" if worst <= TARGET_SERVER_MS else "NOT met"
    print(
        f"target: the {args.jobs:,}-job batch's pages <= {TARGET_SERVER_MS:.0f} ms server time: "
        f"worst p99 {worst:.1f} ms ({verdict})"
    )
    base = statistics.median(next(iter(results.values())).server_ms)
    first = statistics.median(results[f"batch page 1, {args.jobs:,} jobs"].server_ms)
    print(f"{args.jobs:,}-job page 1 / {BASELINE_JOBS}-job page (server p50) = {first / base:.2f}x")


def measure(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="fillpipe-bench-") as tmp:
        root = Path(tmp)
        with embedded_servers(root) as environ:
            token = secrets.token_urlsafe(32)
            environ = {**os.environ, **environ, "FILLPIPE_DASHBOARD_TOKEN": token}
            build_world(environ, args)
            (port,) = free_ports(1)
            server = start_dashboard(environ, port, root / "dashboard.log")
            headers = {"Authorization": f"Bearer {token}"}
            try:
                with httpx.Client(
                    base_url=f"http://{HOST}:{port}", headers=headers, timeout=30
                ) as client:
                    results = {
                        label: measure_page(client, path, args.requests)
                        for label, (path, _) in pages(args).items()
                    }
                    first, kept = measure_previews(client, args.previews)
                    results[f"preview, first read ({PREVIEW_PX}px JPEG)"] = first
                    results["preview, kept"] = kept
            finally:
                server.terminate()
                server.wait(timeout=30)
    report(args, results, {label for label, (_, big) in pages(args).items() if big})


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000, help="jobs of the big batch")
    parser.add_argument("--ended", type=int, default=20_000, help="of them ended (20000)")
    parser.add_argument("--failed", type=int, default=1_000, help="of the ended, failed (1000)")
    parser.add_argument("--requests", type=int, default=100, help="asks of each page (100)")
    parser.add_argument("--previews", type=int, default=20, help="distinct images (20)")
    args = parser.parse_args(argv)
    if not 0 < args.failed < args.ended <= args.jobs:
        parser.error("need 0 < --failed < --ended <= --jobs")
    return args


def main(argv: list[str] | None = None) -> None:
    measure(parse_args(argv))


if __name__ == "__main__":
    main()
