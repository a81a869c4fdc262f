"""Makespan on the provider's slots, beside two baselines, on the embedded stack.

Starts a whole embedded stack in a temporary dir (Valkey, SeaweedFS, the emulator with
`--slots` active tasks per account and a latency of `--latency-s` ± 10%, the receiver,
a worker and beat), trains a finetune, then measures in the same run:

1. fillpipe: `--jobs` jobs as one batch through the whole pipeline (dispatcher, submit,
   webhook, collect, S3 with tags); makespan from the dispatch request to the last
   `stored` transition, over the ideal ceil(jobs / slots) x latency;
2. an asyncio script: a slots-wide semaphore, submit, poll every 0.5 s, download;
3. sequential submit-and-poll (the provider SDK's default), on `--sequential-jobs`
   jobs and projected linearly to `--jobs` (printed as a projection, not a measurement,
   unless `--sequential-jobs` equals `--jobs`);
4. callback-to-stored latency p50/p99 for 1-megapixel images: a second fillpipe batch of
   `--latency-jobs` 1 MP jobs, from the receiver's acceptance of the first final
   callback (`callback_at`) to the job's `stored` transition.

For phase 1 it also prints where the slots' time went, from the emulator's own task
list (`GET /admin/tasks`: each task's `created_at` and `finished_at`): the share of
slot-time the provider spent on tasks, and the slot gap, from a task's finish to the
creation of the task that took its slot (once all slots are in use, the k-th creation
after the first `--slots` waits for the k-th finish), split into finish → callback
recorded (`callback_at`), callback → the next POST (`submitted_at`; apart for slots
handed to a staged job, whose request was ready, and slots leased to a job whose request
is built then: `submitted_via`) and POST → task created.

It then runs the same greedy schedule on `ODDS_DRAWS` fresh latency draws (seeded, not
this run's) to print, independent of this run's luck, the mean makespan / ideal and the
share of runs meeting the target for a pipeline whose slot turn-around were nothing,
only the provider-side parts measured here, or this run's mean slot gap; with every
slot starting at once, and then with the slots starting as this run's did (the ramp of
the first wave's submits), which with this run's mean gap should come near the ratio
measured.

Jobs are created as `fillpipe submit` creates them by default: a batch of up to 200 rows
has its inputs decoded up front and its submits skip decoding them again
(`JobSpec.checked_inputs`); a larger one (phase 1's 480) does not.

Phases 1-3 use 256 px images so that the emulator's own CPU work (inpainting) does not
become the bottleneck on a 2-core machine; phase 4 uses 1 MP images. Every phase asks
for `--output-format` results (jpeg, the provider's and the manifest's default). It also
prints the pipeline's CPU time per job in phase 1 (worker, receiver and beat processes,
user + system), and the emulator's, the S3 server's and Valkey's beside it. With
`--emulator-seed` the emulator draws the same latencies in every run, so two runs differ
only by the pipeline. Figures only: nothing here asserts on time.

Run: `python -m bench.bench_makespan [--jobs 480] [--slots 24] [--latency-s 2]`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import heapq
import math
import os
import random
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from fillpipe.demo import sample_spec, train_finetune
from fillpipe.samples import Sample, make_samples
from fillpipe.stack import EmbeddedStack
from pipeline.batches import create_batch, new_batch_id
from pipeline.intake import AUTO_CHECK_INPUTS_MAX_ROWS
from pipeline.ledger import Ledger
from pipeline.models import OUTPUT_FORMATS, OutputFormat
from pipeline.runtime import Runtime
from pipeline.settings import Settings

MAKESPAN_IMAGE_PX = 256
LATENCY_IMAGE_PX = 1000
POLL_INTERVAL_S = 0.5
TARGET_RATIO = 1.03
JITTER_SHARE = 0.1  # the emulator draws each latency uniformly within ± this share
ODDS_DRAWS = 400  # fresh latency draws for the seed-independent odds of the target
TARGET_P50_MS, TARGET_P99_MS = 50.0, 250.0
DONE_TIMEOUT_S = 900.0
SERVICES = ("worker", "receiver", "beat")
# The other processes on the same two cores, whose CPU per job is printed beside ours.
NEIGHBOURS = ("emulator", "s3", "valkey")


@dataclass(frozen=True)
class Run:
    jobs: int
    makespan_s: float
    batch_id: str = ""
    started_at: float = 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=480)
    parser.add_argument("--slots", type=int, default=24)
    parser.add_argument("--latency-s", type=float, default=2.0)
    parser.add_argument("--sequential-jobs", type=int, default=12)
    parser.add_argument("--latency-jobs", type=int, default=48)
    parser.add_argument("--worker-concurrency", type=int, default=4)
    parser.add_argument("--output-format", choices=OUTPUT_FORMATS, default="jpeg")
    parser.add_argument(
        "--emulator-seed", type=int, help="repeat the emulator's latency draws (default: fresh)"
    )
    args = parser.parse_args()
    environ = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("FILLPIPE_", "AWS_"))},
        "FILLPIPE_PROVIDER_SLOTS": str(args.slots),
        "FILLPIPE_WORKER_CONCURRENCY": str(args.worker_concurrency),
    }
    emulator_env = {
        "FILLPIPE_EMULATOR_MAX_ACTIVE_TASKS": str(args.slots),
        "FILLPIPE_EMULATOR_LATENCY_BASE_S": str(args.latency_s),
        "FILLPIPE_EMULATOR_LATENCY_PER_MP_S": "0",
        "FILLPIPE_EMULATOR_LATENCY_JITTER_S": str(args.latency_s * JITTER_SHARE),
        "FILLPIPE_EMULATOR_SEED": "" if args.emulator_seed is None else str(args.emulator_seed),
    }
    with (
        tempfile.TemporaryDirectory(prefix="fillpipe-makespan-") as tmp,
        EmbeddedStack(Path(tmp), environ, emulator_env=emulator_env) as stack,
    ):
        measure(stack, args)


def measure(stack: EmbeddedStack, args: argparse.Namespace) -> None:
    rt = Runtime.from_settings(Settings.from_environ(stack.env))
    finetune_id = train_finetune(rt)
    ideal_s = math.ceil(args.jobs / args.slots) * args.latency_s
    print(
        f"makespan bench: {args.jobs} jobs, {args.slots} slots, emulator latency "
        f"{args.latency_s:g} s ± 10%, {MAKESPAN_IMAGE_PX} px images, "
        f"{args.worker_concurrency} worker processes, "
        f"{args.output_format} results, emulator seed {args.emulator_seed}; ideal {ideal_s:.1f} s"
    )
    samples = make_samples(args.jobs, size_px=MAKESPAN_IMAGE_PX)

    processes = [psutil.Process(pid) for name, pid in stack.pids.items() if name in SERVICES]
    neighbours = {
        name: psutil.Process(pid) for name, pid in stack.pids.items() if name in NEIGHBOURS
    }
    admin = httpx.Client(
        base_url=stack.env["FILLPIPE_PROVIDER_URL"],
        headers={"x-admin-token": stack.env["FILLPIPE_EMULATOR_ADMIN_TOKEN"]},
        timeout=30.0,
    )
    known = {task["id"] for task in admin.get("/admin/tasks").json()["tasks"]}
    cpu_before = _cpu_s(processes)
    others_before = {name: _cpu_s([process]) for name, process in neighbours.items()}
    ours = run_fillpipe(rt, finetune_id, samples, args.output_format)
    cpu_per_job_ms = (_cpu_s(processes) - cpu_before) / args.jobs * 1000
    others_ms = {
        name: (_cpu_s([process]) - others_before[name]) / args.jobs * 1000
        for name, process in neighbours.items()
    }
    tasks = [task for task in admin.get("/admin/tasks").json()["tasks"] if task["id"] not in known]
    admin.close()
    bodies = [
        _body(sample, finetune_id, index, args.output_format)
        for index, sample in enumerate(samples, 1)
    ]
    script = asyncio.run(run_script(rt.settings, bodies, width=args.slots))
    sequential = asyncio.run(run_script(rt.settings, bodies[: args.sequential_jobs], width=1))

    print(f"{'':34}{'jobs':>6}{'makespan s':>12}{'/ ideal':>9}")
    _row("fillpipe (whole pipeline)", ours, ideal_s)
    _row(f"asyncio, {args.slots}-wide, poll 0.5 s", script, ideal_s)
    _row("sequential submit-and-poll", sequential, None)
    if sequential.jobs < args.jobs:
        projected = sequential.makespan_s / sequential.jobs * args.jobs
        print(
            f"  sequential, projected to {args.jobs} jobs from the {sequential.jobs} measured: "
            f"{projected:.0f} s ({projected / ideal_s:.1f}x ideal)"
        )
    ratio = ours.makespan_s / ideal_s
    verdict = "met" if ratio <= TARGET_RATIO else "NOT met"
    print(f"target: fillpipe makespan / ideal {ratio:.3f} vs <= {TARGET_RATIO} ({verdict})")
    print(f"pipeline CPU time per job (worker + receiver + beat): {cpu_per_job_ms:.1f} ms")
    if others_ms:
        beside = ", ".join(f"{name} {ms:.1f}" for name, ms in others_ms.items())
        print(f"  on the same cores, per job: {beside} ms")
    print_slot_use(ours, tasks, _job_times(rt.ledger, ours.batch_id), args, ideal_s)

    big = make_samples(args.latency_jobs, size_px=LATENCY_IMAGE_PX, seed=1)
    latencies_ms = callback_to_stored_ms(rt, finetune_id, big, args.output_format)
    if len(latencies_ms) >= 2:
        p50 = statistics.median(latencies_ms)
        p99 = statistics.quantiles(latencies_ms, n=100, method="inclusive")[98]
        ok = "met" if p50 <= TARGET_P50_MS and p99 <= TARGET_P99_MS else "NOT met"
        print(
            f"callback-to-stored, {len(latencies_ms)} jobs of 1 MP ({args.output_format}): "
            f"p50 {p50:.0f} ms, "
            f"p99 {p99:.0f} ms vs {TARGET_P50_MS:.0f} / {TARGET_P99_MS:.0f} ms ({ok})"
        )
    rt.close()


def run_fillpipe(
    rt: Runtime, finetune_id: str, samples: Sequence[Sample], output_format: OutputFormat
) -> Run:
    """One batch through the pipeline; makespan to the last job's `stored` transition."""
    batch_id = _batch(rt, finetune_id, samples, output_format)
    started = time.time()
    _wait(rt.ledger, batch_id)
    finished = max(record.updated_at for record in rt.ledger.jobs(batch_id))
    return Run(len(samples), finished - started, batch_id, started)


def callback_to_stored_ms(
    rt: Runtime, finetune_id: str, samples: Sequence[Sample], output_format: OutputFormat
) -> list[float]:
    batch_id = _batch(rt, finetune_id, samples, output_format)
    _wait(rt.ledger, batch_id)
    return [
        (float(stored) - float(called)) * 1000
        for called, stored in _job_fields(rt.ledger, batch_id, "callback_at", "updated_at")
        if called is not None  # stored by the reconcile sweep's poll, not a callback
    ]


def print_slot_use(
    run: Run,
    tasks: Sequence[dict],
    times: dict[str, JobTimes],
    args: argparse.Namespace,
    ideal_s: float,
) -> None:
    """How full the provider's slots were, what each slot's turn-around cost and what
    the makespan would be if the turn-around took only its provider-side part."""
    slots = args.slots
    ended = sorted(
        (task for task in tasks if task.get("finished_at") is not None),
        key=lambda task: task["created_at"],
    )
    if len(ended) <= slots:
        return
    by_finish = sorted(ended, key=lambda task: task["finished_at"])
    span = by_finish[-1]["finished_at"] - ended[0]["created_at"]
    busy = sum(task["finished_at"] - task["created_at"] for task in ended)
    # Once every slot is in use, the k-th creation after the first `slots` waits for
    # the k-th finish: pair them, and split each gap by the ledger's timestamps.
    pairs = list(zip(by_finish, ended[slots:], strict=False))
    gaps = [taken["created_at"] - freed["finished_at"] for freed, taken in pairs]
    heard, ours, posted = [], [], []
    ours_by_way: defaultdict[str | None, list[float]] = defaultdict(list)
    for freed, taken in pairs:
        called = times.get(freed["id"], JobTimes()).callback_at
        taker = times.get(taken["id"], JobTimes())
        if called is not None and taker.submitted_at is not None:
            heard.append(called - freed["finished_at"])
            ours.append(taker.submitted_at - called)
            posted.append(taken["created_at"] - taker.submitted_at)
            ours_by_way[taker.via].append(ours[-1])
    print(
        f"provider slots busy {busy / (slots * span):.1%} of {slots} x {span:.1f} s; "
        f"slot gap (finish -> next task created) {_spread(gaps)}"
    )
    if heard:
        print(f"  finish -> callback recorded (webhook + receiver) {_spread(heard)}")
        print(f"  callback recorded -> next POST sent (dispatch, S3 reads, ledger) {_spread(ours)}")
        for way, label in (
            ("staged", "to a staged job, its request ready"),
            ("dispatch", "to a leased job, its request built then"),
        ):
            if ours_by_way[way]:
                share = len(ours_by_way[way]) / len(ours)
                print(f"    {label}: {share:.0%} of them, {_spread(ours_by_way[way])}")
        print(f"  POST sent -> task created (the provider) {_spread(posted)}")
    stored_at = run.started_at + run.makespan_s
    print(
        f"first task created {(ended[0]['created_at'] - run.started_at) * 1000:.0f} ms after the "
        f"dispatch request, task {slots} (every slot busy) after "
        f"{(ended[slots - 1]['created_at'] - run.started_at) * 1000:.0f} ms; last job stored "
        f"{(stored_at - by_finish[-1]['finished_at']) * 1000:.0f} ms after the last finish"
    )
    durations = [task["finished_at"] - task["created_at"] for task in ended]
    bare = greedy_makespan_s(durations, slots, turnaround_s=0.0)
    print(
        f"these task times on {slots} slots with no turn-around at all: "
        f"{bare / ideal_s:.3f} x ideal (the latency jitter alone)"
    )
    if heard:
        floor_s = statistics.mean(heard) + statistics.mean(posted)
        floor = greedy_makespan_s(durations, slots, turnaround_s=floor_s)
        print(
            f"  ... with only the webhook and POST parts of the turn-around "
            f"({floor_s * 1000:.1f} ms): {floor / ideal_s:.3f} x ideal"
        )
        print(
            f"over {ODDS_DRAWS} fresh draws of {args.latency_s:g} s ± {JITTER_SHARE:.0%} "
            f"(not this run's), mean x ideal and share of runs <= {TARGET_RATIO}, for a "
            f"pipeline whose slot turn-around is only:"
        )
        turnarounds = (
            ("nothing", 0.0),
            ("the webhook and POST parts measured here", floor_s),
            ("this run's mean slot gap", statistics.mean(gaps)),
        )
        for label, turnaround_s in turnarounds:
            mean, share = target_odds(args.jobs, slots, args.latency_s, turnaround_s)
            print(f"  {label} ({turnaround_s * 1000:.1f} ms): {mean:.3f}, {share:.0%}")
        starts = [task["created_at"] - run.started_at for task in ended[:slots]]
        print(
            f"  ... and whose slots start as this run's did (task {slots} created "
            f"{starts[-1] * 1000:.0f} ms after the dispatch request):"
        )
        for label, turnaround_s in turnarounds[1:]:
            mean, share = target_odds(args.jobs, slots, args.latency_s, turnaround_s, starts)
            print(f"  {label}: {mean:.3f}, {share:.0%}")


def greedy_makespan_s(
    durations: Sequence[float],
    slots: int,
    *,
    turnaround_s: float,
    starts: Sequence[float] = (),
) -> float:
    """Makespan of `durations` run in order on `slots` slots, each task starting as soon
    as a slot is free; a freed slot takes `turnaround_s` before its next task starts.
    `starts` are when each slot's first task starts (a run's ramp: its first `slots`
    task creations after the dispatch request); by default every slot starts at 0."""
    first = list(starts) if starts else [0.0] * slots
    if len(first) != slots:
        raise ValueError(f"{len(first)} start times for {slots} slots")
    free = [(at, True) for at in first]  # when each slot is free; True: for its first task
    heapq.heapify(free)
    end = 0.0
    for duration in durations:
        at, fresh = heapq.heappop(free)
        finish = at + (0.0 if fresh else turnaround_s) + duration
        end = max(end, finish)
        heapq.heappush(free, (finish, False))
    return end


def target_odds(
    jobs: int,
    slots: int,
    latency_s: float,
    turnaround_s: float,
    starts: Sequence[float] = (),
) -> tuple[float, float]:
    """Mean makespan / ideal over `ODDS_DRAWS` seeded draws of `jobs` latencies (as the
    emulator draws them), each run greedily with `turnaround_s` per slot turn-around and
    the slots' first tasks starting at `starts` (default: all at once), and the share
    of those runs that meet `TARGET_RATIO`."""
    ideal_s = math.ceil(jobs / slots) * latency_s
    low, high = latency_s * (1 - JITTER_SHARE), latency_s * (1 + JITTER_SHARE)
    ratios = []
    for seed in range(ODDS_DRAWS):
        draw = random.Random(seed)
        durations = [draw.uniform(low, high) for _ in range(jobs)]
        makespan_s = greedy_makespan_s(durations, slots, turnaround_s=turnaround_s, starts=starts)
        ratios.append(makespan_s / ideal_s)
    return statistics.mean(ratios), sum(r <= TARGET_RATIO for r in ratios) / len(ratios)


@dataclass(frozen=True)
class JobTimes:
    submitted_at: float | None = None
    callback_at: float | None = None
    # How the job got its slot: "staged" (its request ready, waiting) or "dispatch"
    # (leased first, its request built after, by whichever task took it).
    via: str | None = None


def _job_times(ledger: Ledger, batch_id: str) -> dict[str, JobTimes]:
    """When each job of `batch_id` was POSTed (and which way) and its callback recorded,
    by task id."""
    fields = _job_fields(
        ledger, batch_id, "provider_task_id", "submitted_at", "callback_at", "submitted_via"
    )
    return {
        task_id: JobTimes(_seconds(sent), _seconds(called), via)
        for task_id, sent, called, via in fields
        if task_id
    }


def _seconds(value: str | None) -> float | None:
    return None if value is None else float(value)


def _job_fields(ledger: Ledger, batch_id: str, *names: str) -> list[list[str | None]]:
    """`names` of every job hash of `batch_id`, in one pipelined round trip."""
    pipe = ledger.redis.pipeline(transaction=False)
    for job_id in ledger.job_ids(batch_id):
        pipe.hmget(f"fp:job:{batch_id}:{job_id}", *names)
    return pipe.execute()


def _spread(seconds: Sequence[float]) -> str:
    ms = sorted(value * 1000 for value in seconds)
    p90 = ms[min(len(ms) - 1, int(len(ms) * 0.9))]
    return f"mean {statistics.mean(ms):.1f} ms, p50 {statistics.median(ms):.1f}, p90 {p90:.1f}"


async def run_script(settings: Settings, bodies: Sequence[dict], *, width: int) -> Run:
    """Submit, poll every 0.5 s, download: `width` jobs at a time."""
    gate = asyncio.Semaphore(width)
    headers = {"x-key": settings.provider_key.reveal()}
    limits = httpx.Limits(max_connections=width * 2)
    async with httpx.AsyncClient(headers=headers, timeout=60, limits=limits) as client:

        async def one(body: dict) -> None:
            async with gate:
                url = f"{settings.provider_url}/v1/flux-pro-1.0-fill-finetuned"
                while (answer := await client.post(url, json=body)).status_code == 429:
                    await asyncio.sleep(float(answer.headers.get("retry-after", 1)))
                answer.raise_for_status()
                polling_url = answer.json()["polling_url"]
                while True:
                    await asyncio.sleep(POLL_INTERVAL_S)
                    result = (await client.get(polling_url)).json()
                    if result["status"] != "Pending":
                        break
                if result["status"] == "Ready":
                    (await client.get(result["result"]["sample"])).raise_for_status()

        started = time.time()
        await asyncio.gather(*(one(body) for body in bodies))
        return Run(len(bodies), time.time() - started)


def _batch(
    rt: Runtime, finetune_id: str, samples: Sequence[Sample], output_format: OutputFormat
) -> str:
    batch_id = new_batch_id()
    specs = [
        sample_spec(
            rt,
            batch_id,
            sample,
            finetune_id,
            index,
            tags={"bench": "makespan"},
            output_format=output_format,
            # As `fillpipe submit` by default: small batches are checked before they
            # start, so their submits skip decoding the pixels; large ones are not.
            check_inputs=len(samples) <= AUTO_CHECK_INPUTS_MAX_ROWS,
        )
        for index, sample in enumerate(samples, start=1)
    ]
    create_batch(rt, batch_id, specs)
    return batch_id


def _wait(ledger: Ledger, batch_id: str) -> None:
    deadline = time.monotonic() + DONE_TIMEOUT_S
    while not (summary := ledger.summary(batch_id)).done:
        if time.monotonic() > deadline:
            raise SystemExit(f"batch {batch_id} not done after {DONE_TIMEOUT_S:.0f} s: {summary}")
        time.sleep(0.05)


def _body(sample: Sample, finetune_id: str, seed: int, output_format: OutputFormat) -> dict:
    return {
        "finetune_id": finetune_id,
        "image": base64.b64encode(sample.image_png).decode(),
        "mask": base64.b64encode(sample.mask_png).decode(),
        "prompt": sample.prompt,
        "seed": seed,
        "output_format": output_format,
    }


def _cpu_s(processes: Sequence[psutil.Process]) -> float:
    """User + system CPU seconds of `processes` and their children so far."""
    total = 0.0
    for process in processes:
        for each in [process, *process.children(recursive=True)]:
            times = each.cpu_times()
            total += times.user + times.system
    return total


def _row(name: str, run: Run, ideal_s: float | None) -> None:
    ratio = "" if ideal_s is None else f"{run.makespan_s / ideal_s:>9.3f}"
    print(f"{name:34}{run.jobs:>6}{run.makespan_s:>12.1f}{ratio}")


if __name__ == "__main__":
    main()
