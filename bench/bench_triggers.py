"""S3-triggered intake, measured: objects put into a bucket that notifies SQS (moto's
server) become jobs through `fillpipe watch sqs`, and reach the provider (the emulator).

Starts moto's server (S3 and SQS) and an embedded stack using it as its S3 (Valkey, the
emulator with `--slots` active tasks of `--latency-s` each, receiver, worker, beat),
trains a finetune, and runs four phases:

1. baseline: `--objects` objects put at once (16 threads) into a bucket notifying its
   own queue, while a bare consumer runs (`--receivers` threads: receive 10, HEAD each
   object, delete 10): what moto gives any consumer that checks its objects, events/s
   from the first PUT to the last message consumed;
2. burst: the same, under the `burst` rule's prefix, with `fillpipe watch sqs` running
   (`--receivers`): intake = objects / (last job in the ledger - first PUT), events/s;
3. trickle: after the burst's batch is cancelled and its tasks have ended, `--trickle`
   photos put one at a time at `--trickle-rate` a second, fewer than the slots take
   (slots / latency), under the `trickle` rule: PUT -> submit per photo (the emulator's
   acceptance of its task minus the end of its PUT), p50 and p99, with a free slot;
4. intake alone: the intake (HEAD, rules, ledger) over `--objects` events already
   received, for objects on SeaweedFS, on `--receivers` threads, in one process and
   then shared by two (two watchers on one queue): what fillpipe's own part costs, with
   moto out of the way.

Targets: intake >= 500 events/s; PUT -> submit p99 <= 1 s while a slot is free. Figures
only: nothing here asserts on time.

Run: `python -m bench.bench_triggers [--objects 1000] [--trickle 40] [--trickle-rate 4]
[--slots 24] [--latency-s 2] [--receivers 4]`.
"""

from __future__ import annotations

import argparse
import os
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from bench.moto_server import MotoServer
from bench.slots import percentile
from bench.trigger_parts import (
    BUCKET,
    PUT_THREADS,
    WAIT_TIMEOUT_S,
    Aws,
    Watcher,
    bare_consume,
    intake_capacity,
    rgba_photo,
)
from fillpipe.demo import train_finetune
from fillpipe.stack import EmbeddedStack
from pipeline.ledger import Ledger
from pipeline.runtime import Runtime
from pipeline.settings import Settings
from pipeline.triggers.intake import rolling_batch_id

WATCHER_START_S = 3.0  # until the watcher's receivers are polling
INTAKE_TARGET_PER_S = 500.0
PUT_TO_SUBMIT_P99_TARGET_S = 1.0
RULES = """
[[rules]]
name = "{name}"
bucket = "fillpipe"
prefix = "incoming/{name}/"
suffix = ".png"
mask = "alpha"
output = "s3://fillpipe/edited/{name}/{{stem}}.{{ext}}"
prompt = "a glossy studio finish"
finetune_id = "{finetune_id}"
output_format = "png"
"""


def main() -> None:
    args = parse_args()
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("FILLPIPE_", "AWS_"))}
    with tempfile.TemporaryDirectory(prefix="fillpipe-triggers-") as tmp:
        moto = MotoServer(Path(tmp) / "moto.log", base)
        moto.start(timeout_s=60)
        try:
            run(args, Path(tmp), base, moto)
        finally:
            moto.stop()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--trickle", type=int, default=40)
    parser.add_argument("--trickle-rate", type=float, default=4.0, help="photos a second")
    parser.add_argument("--slots", type=int, default=24)
    parser.add_argument("--latency-s", type=float, default=2.0)
    parser.add_argument("--receivers", type=int, default=4)
    return parser.parse_args()


def run(args: argparse.Namespace, tmp: Path, base: Mapping[str, str], moto: MotoServer) -> None:
    aws = Aws(moto)
    aws.s3.create_bucket(Bucket=BUCKET)
    queue = aws.notifying_queue(BUCKET, "fillpipe-events", prefix="incoming/")
    environ = {**base, **moto.env, "FILLPIPE_PROVIDER_SLOTS": str(args.slots)}
    emulator_env = {
        "FILLPIPE_EMULATOR_MAX_ACTIVE_TASKS": str(args.slots),
        "FILLPIPE_EMULATOR_INITIAL_CREDITS": "100000000",
        "FILLPIPE_EMULATOR_LATENCY_BASE_S": str(args.latency_s),
        "FILLPIPE_EMULATOR_LATENCY_PER_MP_S": "0",
        "FILLPIPE_EMULATOR_LATENCY_JITTER_S": "0",
    }
    photo = rgba_photo()
    with EmbeddedStack(tmp / "stack", environ, emulator_env=emulator_env) as stack:
        bench = Phases(args, tmp, {**base, **moto.env, **stack.env}, aws, photo)
        rt = Runtime.from_settings(Settings.from_environ(stack.env))
        try:
            finetune_id = train_finetune(rt)
        finally:
            rt.close()
        rules = tmp / "rules.toml"
        rules.write_text(
            "".join(RULES.format(name=n, finetune_id=finetune_id) for n in ("burst", "trickle"))
        )
        print(
            f"trigger bench: moto S3 -> SQS, {args.slots} slots, emulator latency "
            f"{args.latency_s:g} s, {args.receivers} receivers, {os.cpu_count()} CPUs"
        )
        baseline = bench.baseline()
        intake = bench.burst(queue, rules)
        put_to_submit = bench.trickle(queue, rules)
        report(args, baseline, intake, put_to_submit, bench.puts_s)
        capacity = intake_capacity(args, tmp, base, stack.env, rules)
        for processes, rate in capacity.items():
            print(
                f"intake alone (HEAD on SeaweedFS + ledger; no queue), {args.objects} events "
                f"in batches of 10, {processes} process(es) of {args.receivers} threads: "
                f"{rate:.0f} events/s, target >= {INTAKE_TARGET_PER_S:.0f} "
                f"({_verdict(rate >= INTAKE_TARGET_PER_S)})"
            )


class Phases:
    def __init__(
        self, args: argparse.Namespace, tmp: Path, env: dict[str, str], aws: Aws, photo: bytes
    ) -> None:
        self.args, self.tmp, self.env, self.aws, self.photo = args, tmp, env, aws, photo
        self.ledger = Ledger.from_settings(Settings.from_environ(env))

    def baseline(self) -> float:
        """Events/s of a bare consumer of the same server, under the same burst of PUTs."""
        self.aws.s3.create_bucket(Bucket="baseline")
        url = self.aws.notifying_queue("baseline", "baseline", prefix="")
        self.aws.drain_test_events(url)
        consumer = threading.Thread(
            target=bare_consume, args=(self.aws, url, self.args.receivers, self.args.objects)
        )
        consumer.start()
        started = time.monotonic()
        self.put_all("baseline", "b", self.args.objects)
        consumer.join(WAIT_TIMEOUT_S)
        return self.args.objects / (time.monotonic() - started)

    def burst(self, queue: str, rules: Path) -> float:
        """Intake events/s of `fillpipe watch sqs` under a burst of `--objects` PUTs: from
        the first PUT to the last job in the ledger."""
        batch = rolling_batch_id("burst", time.time())
        with self.watcher(queue, rules, "burst"):
            time.sleep(WATCHER_START_S)
            started = time.monotonic()
            self.put_all(BUCKET, "incoming/burst/p", self.args.objects)
            self.puts_s = time.monotonic() - started
            wait_for(lambda: self.recorded(batch) >= self.args.objects, "every burst job")
            elapsed = time.monotonic() - started
        self.ledger.batches.cancel(batch)
        wait_for(lambda: not self.ledger.slots.leases(), "the burst's tasks to end")
        return self.args.objects / elapsed

    def trickle(self, queue: str, rules: Path) -> list[float]:
        """PUT -> submit seconds of each trickled photo."""
        put_at: dict[str, float] = {}
        interval_s = 1 / self.args.trickle_rate
        batch = rolling_batch_id("trickle", time.time())
        with self.watcher(queue, rules, "trickle"):
            time.sleep(WATCHER_START_S)
            for n in range(self.args.trickle):
                key = f"incoming/trickle/t{n:04d}.png"
                put_at[f"s3://{BUCKET}/{key}"] = self.aws.put(BUCKET, key, self.photo)
                time.sleep(interval_s)
            wait_for(lambda: self.submitted(batch) >= self.args.trickle, "every trickle submit")
        accepted = self.accepted_at()
        return [
            accepted[record.provider_task_id] - put_at[record.spec.image_uri]
            for record in self.ledger.jobs.of_batch(batch)
            if record.provider_task_id in accepted
        ]

    def put_all(self, bucket: str, stem: str, count: int) -> None:
        with ThreadPoolExecutor(PUT_THREADS) as pool:
            list(
                pool.map(
                    lambda n: self.aws.put(bucket, f"{stem}{n:05d}.png", self.photo), range(count)
                )
            )

    def recorded(self, batch: str) -> int:
        summary = self.ledger.batches.summary(batch)
        return 0 if summary is None else summary.total

    def submitted(self, batch: str) -> int:
        return sum(
            record.provider_task_id is not None for record in self.ledger.jobs.of_batch(batch)
        )

    def accepted_at(self) -> dict[str, float]:
        env = self.env
        with httpx.Client(
            base_url=env["FILLPIPE_PROVIDER_URL"],
            headers={"x-admin-token": env["FILLPIPE_EMULATOR_ADMIN_TOKEN"]},
            timeout=60.0,
        ) as admin:
            tasks = admin.get("/admin/tasks").raise_for_status().json()["tasks"]
        return {task["id"]: task["created_at"] for task in tasks}

    def watcher(self, queue: str, rules: Path, name: str) -> Watcher:
        return Watcher(queue, rules, self.env, self.tmp / f"watch-{name}.log", self.args.receivers)


def _verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def wait_for(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_TIMEOUT_S
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.02)


def report(
    args: argparse.Namespace,
    baseline: float,
    intake: float,
    put_to_submit: list[float],
    puts_s: float,
) -> None:
    met = "met" if intake >= INTAKE_TARGET_PER_S else "NOT met"
    print(
        f"\nmoto took {args.objects} PUTs ({PUT_THREADS} threads) at {args.objects / puts_s:.0f}/s"
    )
    print(f"{'':38}{'events/s':>10}")
    print(f"{'bare consumer: receive, HEAD, delete':38}{baseline:>10.0f}")
    print(
        f"{'fillpipe watch sqs (intake)':38}{intake:>10.0f}   target >= "
        f"{INTAKE_TARGET_PER_S:.0f} ({met}); {intake / baseline:.2f} of the baseline"
    )
    if len(put_to_submit) < 2:
        print("PUT -> submit: too few submits measured")
        return
    p50, p99 = percentile(put_to_submit, 50), percentile(put_to_submit, 99)
    met = "met" if p99 <= PUT_TO_SUBMIT_P99_TARGET_S else "NOT met"
    print(
        f"PUT -> submit with a free slot, {len(put_to_submit)} photos at "
        f"{args.trickle_rate:g}/s: p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms "
        f"(target p99 <= {PUT_TO_SUBMIT_P99_TARGET_S:g} s: {met}); provider slots "
        f"{args.slots}, each task {args.latency_s:g} s"
    )


if __name__ == "__main__":
    main()
