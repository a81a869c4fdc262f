"""How well fillpipe keeps several provider accounts' slots busy at once, seen from the
provider's side, against one account alone on the same stack in the same run.

Starts the stack as `fillpipe up` does with an accounts file of `--accounts` BFL
accounts of `--slots` slots each (keys from the environment), the emulator allowing
twice that per key (so an account driven past its limit would show in the emulator's
high-water mark instead of being refused), each task's latency uniform within
`--latency-s` ± 10%. It trains a finetune on each account, then runs:

1. **one account**: `--jobs-per-account` jobs on the first account alone;
2. **all accounts**: one manifest of `--accounts` x `--jobs-per-account` jobs, rows
   interleaved, each with its account's finetune and no account named (fillpipe routes
   each by the account that owns its finetune);
3. **one wide account**: as many jobs on one more account, `wide`, of `--accounts` x
   `--slots` slots: the same load on the same machine in a single pool, which tells
   what of run 2's figures comes from the load and what from the pools.

Each run is `python -m fillpipe submit MANIFEST --wait` in a subprocess. From the
emulator's task list it prints per account (tasks grouped by the key that created them)
the figures of `bench.slots`: slot gaps p50/p99, makespan, floor and their ratio, and
the CPU time per job of the pipeline's processes and of the emulator, S3 and Valkey
beside them on the same cores; then the highest number of active tasks each key ever
had. Figures only: nothing here asserts on time.

Run: `python -m bench.bench_accounts [--accounts 3] [--slots 24] [--jobs-per-account 240]
[--latency-s 2] [--size-px 64]`.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil

from bench.bench_makespan import GAP_P50_MARGIN_MS, GAP_P99_FACTOR, RATIO_MARGIN, cpu_s
from bench.makespan_inputs import manifest_rows, write_inputs
from bench.slots import SlotUse, slot_use
from fillpipe.demo import train_finetune
from fillpipe.stack import EmbeddedStack
from pipeline.runtime import Runtime
from pipeline.settings import Settings

WIDE = "wide"
JITTER_SHARE = 0.1
SERVICES = ("worker", "receiver", "beat")
NEIGHBOURS = ("emulator", "s3", "valkey")
EMULATOR_CREDITS = 100_000_000
SETTLE_S = 2.0
SUBMIT_TIMEOUT_WAVES = 10


def main() -> None:
    args = parse_args()
    started = time.monotonic()
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("FILLPIPE_", "AWS_"))}
    names = [f"brand-{chr(ord('a') + index)}" for index in range(args.accounts)]
    slots = {**dict.fromkeys(names, args.slots), WIDE: args.accounts * args.slots}
    keys = {name: f"bench-{name}-{secrets.token_hex(8)}" for name in slots}
    with tempfile.TemporaryDirectory(prefix="fillpipe-accounts-") as tmp:
        accounts_file = Path(tmp) / "accounts.toml"
        accounts_file.write_text(accounts_toml(slots))
        environ = {**base, "FILLPIPE_ACCOUNTS_FILE": str(accounts_file), **key_env(keys)}
        emulator_env = {
            "FILLPIPE_EMULATOR_ACCOUNTS": json.dumps(
                {keys[name]: {"slots": 2 * count} for name, count in slots.items()}
            ),
            "FILLPIPE_EMULATOR_INITIAL_CREDITS": str(EMULATOR_CREDITS),
            "FILLPIPE_EMULATOR_LATENCY_BASE_S": str(args.latency_s),
            "FILLPIPE_EMULATOR_LATENCY_PER_MP_S": "0",
            "FILLPIPE_EMULATOR_LATENCY_JITTER_S": str(args.latency_s * JITTER_SHARE),
        }
        with EmbeddedStack(Path(tmp) / "stack", environ, emulator_env=emulator_env) as stack:
            AccountsBench(stack, args, Path(tmp), {**environ, **stack.env}, keys, slots).run()
    print(f"bench took {time.monotonic() - started:.0f} s")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=3)
    parser.add_argument("--slots", type=int, default=24)
    parser.add_argument("--jobs-per-account", type=int, default=240)
    parser.add_argument("--latency-s", type=float, default=2.0)
    parser.add_argument("--size-px", type=int, default=64)
    return parser.parse_args()


def accounts_toml(slots: Mapping[str, int]) -> str:
    return "".join(
        f'[accounts.{name}]\nkey_env = "{env_name(name)}"\nslots = {count}\n\n'
        for name, count in slots.items()
    )


def env_name(account: str) -> str:
    return "BENCH_KEY_" + account.upper().replace("-", "_")


def key_env(keys: Mapping[str, str]) -> dict[str, str]:
    return {env_name(name): key for name, key in keys.items()}


class AccountsBench:
    """The two runs on one stack, with a finetune per account."""

    def __init__(
        self,
        stack: EmbeddedStack,
        args: argparse.Namespace,
        tmp: Path,
        env: Mapping[str, str],
        keys: Mapping[str, str],
        slots: Mapping[str, int],
    ) -> None:
        self.stack, self.args, self.tmp, self.env, self.keys = stack, args, tmp, env, keys
        self.slots = slots
        self.admin = httpx.Client(
            base_url=stack.env["FILLPIPE_PROVIDER_URL"],
            headers={"x-admin-token": stack.env["FILLPIPE_EMULATOR_ADMIN_TOKEN"]},
            timeout=60.0,
        )
        rt = Runtime.from_settings(Settings.from_environ(env))
        try:
            self.finetunes = {name: train_finetune(rt, name) for name in keys}
        finally:
            rt.close()
        self.inputs = write_inputs(tmp / "inputs", args.size_px)

    def run(self) -> None:
        args = self.args
        print(
            f"accounts bench: {args.accounts} accounts x {args.slots} slots, "
            f"{args.jobs_per_account} jobs each, emulator latency {args.latency_s:g} s "
            f"± {JITTER_SHARE:.0%}, {args.size_px} px inputs, {os.cpu_count()} CPUs"
        )
        jobs = args.jobs_per_account
        brands = [name for name in self.keys if name != WIDE]
        one = self.run_manifest("one", {brands[0]: jobs})
        print_run(one)
        every = self.run_manifest("all", dict.fromkeys(brands, jobs))
        print_run(every)
        print_targets(one.uses[brands[0]], every)
        print_run(self.run_manifest(WIDE, {WIDE: jobs * len(brands)}))
        print_high_water(self.admin.get("/admin/stats").json()["accounts"], self.keys, self.slots)
        self.admin.close()

    def run_manifest(self, label: str, jobs: Mapping[str, int]) -> Run:
        """Submit and wait for a manifest of `jobs[account]` jobs on each account, rows
        interleaved: each account's provider-side figures, and CPU per job."""
        manifest = self.tmp / f"manifest-{label}.jsonl"
        per_account = {
            name: manifest_rows(self.inputs, count, self.finetunes[name], "jpeg")
            for name, count in jobs.items()
        }
        rows = [
            {**rows[index], "id": f"{name}-{index:04d}"}
            for index in range(max(jobs.values()))
            for name, rows in per_account.items()
            if index < len(rows)
        ]
        manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
        time.sleep(SETTLE_S)
        known = {task["id"] for task in self.tasks()}
        processes = {name: psutil.Process(pid) for name, pid in self.stack.pids.items()}
        cpu_before = {name: cpu_s(process) for name, process in processes.items()}
        wall_s = self.submit(manifest, max(jobs.values()) // min(self.slots[n] for n in jobs))
        cpu_ms = {
            name: (cpu_s(process) - cpu_before[name]) / len(rows) * 1000
            for name, process in processes.items()
        }
        print(f"\n{label}: {len(rows)} jobs, fillpipe submit --wait {wall_s:.1f} s")
        tasks = [task for task in self.tasks() if task["id"] not in known]
        uses = {
            name: slot_use(
                [task for task in tasks if task["owner"] == self.keys[name]], self.slots[name]
            )
            for name in jobs
        }
        return Run(uses, cpu_ms)

    def submit(self, manifest: Path, waves: int) -> float:
        timeout_s = 120 + SUBMIT_TIMEOUT_WAVES * (waves + 1) * self.args.latency_s
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "fillpipe", "submit", str(manifest), "--wait"],
            env=dict(self.env),
            capture_output=True,
            timeout=timeout_s,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"fillpipe submit exited {done.returncode}:\n{done.stderr[-2000:]!r}")
        return time.monotonic() - started

    def tasks(self) -> list[dict[str, Any]]:
        return self.admin.get("/admin/tasks").raise_for_status().json()["tasks"]


@dataclass(frozen=True)
class Run:
    """One run's figures: each account's slot use, and CPU ms per job by process."""

    uses: Mapping[str, SlotUse]
    cpu_ms: Mapping[str, float]


def print_run(run: Run) -> None:
    print(
        f"{'account':12}{'tasks':>6}{'gap p50 ms':>12}{'gap p99 ms':>12}"
        f"{'makespan s':>12}{'floor s':>9}{'ratio':>8}"
    )
    for name, use in run.uses.items():
        print(
            f"{name:12}{use.tasks:>6}{use.gap_ms(50):>12.1f}{use.gap_ms(99):>12.1f}"
            f"{use.makespan_s:>12.2f}{use.floor_s:>9.2f}{use.ratio:>8.3f}"
        )
    pipeline = sum(run.cpu_ms.get(name, 0.0) for name in SERVICES)
    beside = ", ".join(
        f"{name} {run.cpu_ms[name]:.1f}" for name in NEIGHBOURS if name in run.cpu_ms
    )
    print(f"CPU per job: pipeline (worker + receiver + beat) {pipeline:.1f} ms; {beside} ms")


def print_targets(alone: SlotUse, every: Run) -> None:
    """The dispatch targets per pool, against the one account alone in the same run."""
    p50, p99 = alone.gap_ms(50), alone.gap_ms(99)
    for name, use in every.uses.items():
        checks = (
            ("gap p50", use.gap_ms(50) <= p50 + GAP_P50_MARGIN_MS),
            ("gap p99", use.gap_ms(99) <= GAP_P99_FACTOR * p99),
            ("ratio", use.ratio <= alone.ratio + RATIO_MARGIN),
        )
        verdicts = ", ".join(f"{check} {'met' if met else 'NOT met'}" for check, met in checks)
        print(f"targets for {name} against the account alone: {verdicts}")
    print(
        f"  (gap p50 <= {p50:.1f} + {GAP_P50_MARGIN_MS:g} ms, gap p99 <= {GAP_P99_FACTOR:g} x "
        f"{p99:.1f} ms, ratio <= {alone.ratio:.3f} + {RATIO_MARGIN:g})"
    )


def print_high_water(
    stats: Mapping[str, Mapping[str, Any]], keys: Mapping[str, str], slots: Mapping[str, int]
) -> None:
    marks = {
        name: stats.get(key, {}).get("active_tasks_high_water", 0) for name, key in keys.items()
    }
    over = [name for name, mark in marks.items() if mark > slots[name]]
    shown = ", ".join(f"{name} {mark}/{slots[name]}" for name, mark in marks.items())
    verdict = f"over the limit: {', '.join(over)}" if over else "never above any limit"
    print(f"\nmost active tasks at once per account / its limit: {shown}; {verdict}")


if __name__ == "__main__":
    main()
