"""How well fillpipe keeps the provider's slots busy, seen from the provider's side,
beside a webhook-driven asyncio script, on one embedded stack.

Starts the stack as `fillpipe up` does (Valkey, SeaweedFS, the emulator, the receiver,
a worker and beat; fillpipe's defaults throughout) in a temporary dir, with the
emulator allowing `--slots` active tasks and drawing each task's latency uniformly
within `--latency-s` ± 10%, whatever the image size. It trains a finetune, then for
each case (input size x job count, `--repeat` rounds; the two clients alternate which
goes first from case to case) runs the same jobs (the same images, prompts and seeds):

- fillpipe as a user runs it: a JSONL manifest of local image and mask files, then
  `python -m fillpipe submit MANIFEST --wait` in a subprocess (its wall time is the
  user-side figure);
- the script (`bench.script`): a `--slots`-wide semaphore released when each task's
  webhook arrives, the result downloaded afterwards.

From the emulator's task list (`GET /admin/tasks`, the tasks created by that run) it
prints per client the provider-side figures of `bench.slots`: the slot gaps (p50, p99),
makespan, floor (the same task durations replayed on `--slots` slots with no
turn-around), their ratio and the ramp; then fillpipe's targets against the script in
the same case. For each fillpipe run it also prints callback-to-stored (the emulator's
`webhook_at` to the ledger's `stored` transition; its targets are judged for 1 MP
inputs) and the CPU time per job of the pipeline's processes (worker, receiver, beat
and their children), with the emulator's, S3's and Valkey's beside it: they share the
machine's cores. Figures only: nothing here asserts on time.

Run: `python -m bench.bench_makespan [--jobs 240 480] [--sizes 64 1000] [--repeat 1]
[--slots 24] [--latency-s 2] [--output-format jpeg] [--emulator-seed N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.makespan_inputs import SAMPLES, Inputs, manifest_rows, script_bodies, write_inputs
from bench.script import run_script
from bench.slots import SlotUse, percentile, slot_use
from fillpipe.demo import train_finetune
from fillpipe.stack import EmbeddedStack
from pipeline.ledger import Ledger
from pipeline.models import OUTPUT_FORMATS
from pipeline.runtime import Runtime
from pipeline.settings import Settings
from pipeline.states import JobState

JITTER_SHARE = 0.1  # the emulator draws each latency uniformly within ± this share
BATCH_ID = re.compile(r"b\d{8}-[0-9a-f]+")
# Enough for every case of any run: 1 MP costs 8 credits, and the default is 1000.
EMULATOR_CREDITS = 100_000_000
SUBMIT_TIMEOUT_WAVES = 10  # `fillpipe submit --wait` gives up after 10x the ideal makespan
SETTLE_S = 2.0  # before each run, so that the last run's stragglers do not land in it
GAP_P50_MARGIN_MS = 10.0  # fillpipe's gap p50 may exceed the script's by this much
GAP_P99_FACTOR = 1.5  # ... its gap p99 by this factor
RATIO_MARGIN = 0.01  # ... its makespan / floor by this much
STORED_P50_MS, STORED_P99_MS = 50.0, 250.0
STORED_TARGET_MIN_PX = 1000  # callback-to-stored targets are for 1 MP inputs
SERVICES = ("worker", "receiver", "beat")
NEIGHBOURS = ("emulator", "s3", "valkey")  # the other processes on the same cores


@dataclass(frozen=True)
class Case:
    size_px: int
    jobs: int
    round: int


@dataclass(frozen=True)
class Run:
    """One client's run of one case."""

    use: SlotUse
    wall_s: float
    not_done: int  # jobs that did not end stored (fillpipe) or SUCCESS (script)
    client_cpu_s: float  # the `fillpipe submit` process's CPU, or the script's
    stored_ms: tuple[float, ...] = ()  # fillpipe: webhook delivered -> stored, per job
    cpu_ms: Mapping[str, float] | None = None  # fillpipe: CPU ms per job by process


def main() -> None:
    args = parse_args()
    started = time.monotonic()
    # On SIGTERM, unwind as on Ctrl-C, so that the stack's servers are stopped.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("FILLPIPE_", "AWS_"))}
    # The account's slot count is what a user configures for their account, not a knob.
    environ = {**base, "FILLPIPE_PROVIDER_SLOTS": str(args.slots)}
    emulator_env = {
        "FILLPIPE_EMULATOR_MAX_ACTIVE_TASKS": str(args.slots),
        "FILLPIPE_EMULATOR_INITIAL_CREDITS": str(EMULATOR_CREDITS),
        "FILLPIPE_EMULATOR_LATENCY_BASE_S": str(args.latency_s),
        "FILLPIPE_EMULATOR_LATENCY_PER_MP_S": "0",
        "FILLPIPE_EMULATOR_LATENCY_JITTER_S": str(args.latency_s * JITTER_SHARE),
        "FILLPIPE_EMULATOR_SEED": "" if args.emulator_seed is None else str(args.emulator_seed),
    }
    with (
        tempfile.TemporaryDirectory(prefix="fillpipe-makespan-") as tmp,
        EmbeddedStack(Path(tmp) / "stack", environ, emulator_env=emulator_env) as stack,
    ):
        Bench(stack, args, Path(tmp), base).run()
    print(f"bench took {time.monotonic() - started:.0f} s")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, nargs="+", default=[240, 480])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 1000], help="px a side")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--slots", type=int, default=24)
    parser.add_argument("--latency-s", type=float, default=2.0)
    parser.add_argument("--output-format", choices=OUTPUT_FORMATS, default="jpeg")
    parser.add_argument(
        "--emulator-seed", type=int, help="repeat the emulator's latency draws (default: fresh)"
    )
    return parser.parse_args()


class Bench:
    """The cases of one bench run, on one stack and one finetune."""

    def __init__(
        self, stack: EmbeddedStack, args: argparse.Namespace, tmp: Path, base: Mapping[str, str]
    ) -> None:
        self.stack, self.args, self.tmp = stack, args, tmp
        self.env = {**base, **stack.env}  # what `fillpipe submit` runs with
        self.provider_url = stack.env["FILLPIPE_PROVIDER_URL"]
        self.ledger = Ledger.from_settings(Settings.from_environ(stack.env))
        self.admin = httpx.Client(
            base_url=self.provider_url,
            headers={"x-admin-token": stack.env["FILLPIPE_EMULATOR_ADMIN_TOKEN"]},
            timeout=60.0,
        )
        rt = Runtime.from_settings(Settings.from_environ(stack.env))
        try:
            self.finetune_id = train_finetune(rt)
        finally:
            rt.close()
        self.inputs: dict[int, Inputs] = {}

    def run(self) -> None:
        args = self.args
        print(
            f"makespan bench: {args.slots} slots, emulator latency {args.latency_s:g} s "
            f"± {JITTER_SHARE:.0%} (any size), {args.output_format} results, emulator seed "
            f"{args.emulator_seed}, {SAMPLES} distinct inputs a case, {os.cpu_count()} CPUs"
        )
        cases = [
            Case(size, jobs, round_)
            for round_ in range(1, args.repeat + 1)
            for size in args.sizes
            for jobs in args.jobs
        ]
        for index, case in enumerate(cases):
            fillpipe_first = index % 2 == 0
            if fillpipe_first:
                ours, script = self.run_fillpipe(case), self.run_script(case)
            else:
                script, ours = self.run_script(case), self.run_fillpipe(case)
            print_case(case, ours, script, fillpipe_first=fillpipe_first)
        self.admin.close()

    def inputs_for(self, size_px: int) -> Inputs:
        if size_px not in self.inputs:
            self.inputs[size_px] = write_inputs(self.tmp / f"inputs-{size_px}", size_px)
        return self.inputs[size_px]

    def run_fillpipe(self, case: Case) -> Run:
        inputs = self.inputs_for(case.size_px)
        manifest = self.tmp / f"manifest-{case.size_px}-{case.jobs}-{case.round}.jsonl"
        rows = manifest_rows(inputs, case.jobs, self.finetune_id, self.args.output_format)
        manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
        time.sleep(SETTLE_S)
        known = self.task_ids()
        processes = {name: psutil.Process(pid) for name, pid in self.stack.pids.items()}
        cpu_before = {name: cpu_s(process) for name, process in processes.items()}
        client_before = rusage_cpu_s(resource.RUSAGE_CHILDREN)
        batch_id, wall_s = self.submit(manifest, case.jobs)
        client_cpu_s = rusage_cpu_s(resource.RUSAGE_CHILDREN) - client_before
        cpu_ms = {
            name: (cpu_s(process) - cpu_before[name]) / case.jobs * 1000
            for name, process in processes.items()
        }
        tasks = self.tasks_since(known)
        summary = self.ledger.batches.summary(batch_id)
        stored = summary.counts.get(JobState.STORED, 0) if summary else 0
        stored_ms = tuple(self.callback_to_stored_ms(batch_id, tasks))
        use = slot_use(tasks, self.args.slots)
        return Run(use, wall_s, case.jobs - stored, client_cpu_s, stored_ms, cpu_ms)

    def submit(self, manifest: Path, jobs: int) -> tuple[str, float]:
        """`fillpipe submit MANIFEST --wait` as a user runs it: its batch id, wall time."""
        command = [sys.executable, "-m", "fillpipe", "submit", str(manifest), "--wait"]
        waves = -(-jobs // self.args.slots)
        timeout_s = 60 + SUBMIT_TIMEOUT_WAVES * waves * self.args.latency_s
        log = self.tmp / f"{manifest.stem}.stderr"
        started = time.monotonic()
        with log.open("wb") as stderr:
            done = subprocess.run(
                command,
                env=self.env,
                stdout=subprocess.PIPE,
                stderr=stderr,
                timeout=timeout_s,
                check=False,
            )
        wall_s = time.monotonic() - started
        batch_id = parse_batch_id(done.stdout.decode())
        if batch_id is None:
            tail = log.read_text(errors="replace")[-2000:]
            raise SystemExit(f"fillpipe submit exited {done.returncode}, no batch id:\n{tail}")
        return batch_id, wall_s

    def run_script(self, case: Case) -> Run:
        inputs = self.inputs_for(case.size_px)
        bodies = script_bodies(inputs, case.jobs, self.finetune_id, self.args.output_format)
        time.sleep(SETTLE_S)
        known = self.task_ids()
        key = self.stack.env["FILLPIPE_PROVIDER_KEY"]
        started, cpu_before = time.monotonic(), rusage_cpu_s(resource.RUSAGE_SELF)
        statuses = asyncio.run(run_script(self.provider_url, key, bodies, slots=self.args.slots))
        wall_s, cpu = time.monotonic() - started, rusage_cpu_s(resource.RUSAGE_SELF) - cpu_before
        not_done = sum(status != "SUCCESS" for status in statuses)
        return Run(slot_use(self.tasks_since(known), self.args.slots), wall_s, not_done, cpu)

    def task_ids(self) -> set[str]:
        return {task["id"] for task in self.tasks_since(set())}

    def tasks_since(self, known: set[str]) -> list[dict[str, Any]]:
        """The emulator's tasks whose ids are not in `known`."""
        tasks = self.admin.get("/admin/tasks").raise_for_status().json()["tasks"]
        return [task for task in tasks if task["id"] not in known]

    def callback_to_stored_ms(self, batch_id: str, tasks: Sequence[Mapping]) -> list[float]:
        """Per stored job: its `stored` transition minus its task's webhook delivery."""
        delivered = {task["id"]: task["webhook_at"] for task in tasks if task.get("webhook_at")}
        return [
            (record.updated_at - delivered[record.provider_task_id]) * 1000
            for record in self.ledger.jobs.of_batch(batch_id)
            if record.state is JobState.STORED and record.provider_task_id in delivered
        ]


def parse_batch_id(stdout: str) -> str | None:
    """The first non-empty stdout line that is, or holds, a batch id."""
    for line in stdout.splitlines():
        if line.strip() and (found := BATCH_ID.search(line)):
            return found.group()
    return None


def rusage_cpu_s(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def cpu_s(process: psutil.Process) -> float:
    """User + system CPU seconds of `process` and its living children so far."""
    total = 0.0
    for each in [process, *process.children(recursive=True)]:
        try:
            times = each.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def print_case(case: Case, ours: Run, script: Run, *, fillpipe_first: bool) -> None:
    first = "fillpipe" if fillpipe_first else "script"
    print(f"\n{case.size_px} px x {case.jobs} jobs, round {case.round} ({first} ran first)")
    print(
        f"{'':10}{'jobs':>6}{'gap p50 ms':>12}{'gap p99 ms':>12}{'makespan s':>12}"
        f"{'floor s':>9}{'ratio':>8}{'ramp ms':>9}"
    )
    for name, run in (("fillpipe", ours), ("script", script)):
        use = run.use
        print(
            f"{name:10}{use.tasks:>6}{use.gap_ms(50):>12.1f}{use.gap_ms(99):>12.1f}"
            f"{use.makespan_s:>12.2f}{use.floor_s:>9.2f}{use.ratio:>8.3f}{use.ramp_s * 1000:>9.0f}"
        )
    print_targets(ours.use, script.use)
    print(
        f"wall (CPU) of the client: fillpipe submit --wait {ours.wall_s:.1f} s "
        f"({ours.client_cpu_s:.1f} s), script {script.wall_s:.1f} s ({script.client_cpu_s:.1f} s);"
        f" jobs not done: fillpipe {ours.not_done}, script {script.not_done}"
    )
    print_cpu(ours.cpu_ms or {})
    print_stored(case, ours.stored_ms)


def print_targets(ours: SlotUse, script: SlotUse) -> None:
    p50, p99 = script.gap_ms(50), script.gap_ms(99)
    checks = (
        ("gap p50", f"{ours.gap_ms(50):.1f} <= {p50:.1f} + {GAP_P50_MARGIN_MS:g} ms",
         ours.gap_ms(50) <= p50 + GAP_P50_MARGIN_MS),
        ("gap p99", f"{ours.gap_ms(99):.1f} <= {GAP_P99_FACTOR:g} x {p99:.1f} ms",
         ours.gap_ms(99) <= GAP_P99_FACTOR * p99),
        ("ratio", f"{ours.ratio:.3f} <= {script.ratio:.3f} + {RATIO_MARGIN:g}",
         ours.ratio <= script.ratio + RATIO_MARGIN),
    )  # fmt: skip
    verdicts = [f"{name} {text} ({_verdict(met)})" for name, text, met in checks]
    print("targets vs the script: " + "; ".join(verdicts))


def print_cpu(cpu_ms: Mapping[str, float]) -> None:
    pipeline = sum(cpu_ms.get(name, 0.0) for name in SERVICES)
    beside = ", ".join(f"{name} {cpu_ms[name]:.1f}" for name in NEIGHBOURS if name in cpu_ms)
    print(f"CPU per job: pipeline (worker + receiver + beat) {pipeline:.1f} ms; {beside} ms")


def print_stored(case: Case, stored_ms: Sequence[float]) -> None:
    if len(stored_ms) < 2:
        return
    p50, p99 = percentile(stored_ms, 50), percentile(stored_ms, 99)
    line = f"callback-to-stored, {len(stored_ms)} jobs: p50 {p50:.0f} ms, p99 {p99:.0f} ms"
    if case.size_px >= STORED_TARGET_MIN_PX:
        met = p50 <= STORED_P50_MS and p99 <= STORED_P99_MS
        line += f" vs {STORED_P50_MS:.0f} / {STORED_P99_MS:.0f} ms ({_verdict(met)})"
    print(line)


def _verdict(met: bool) -> str:
    return "met" if met else "NOT met"


if __name__ == "__main__":
    main()
