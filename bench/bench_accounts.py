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
   each by the account that owns its finetune).

Each run is `python -m fillpipe submit MANIFEST --wait` in a subprocess. From the
emulator's task list it prints per account (tasks grouped by the key that created them)
the figures of `bench.slots`: slot gaps p50/p99, makespan, floor and their ratio; then
the highest number of active tasks each key ever had. Figures only: nothing here
asserts on time.

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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from bench.makespan_inputs import manifest_rows, write_inputs
from bench.slots import SlotUse, slot_use
from fillpipe.demo import train_finetune
from fillpipe.stack import EmbeddedStack
from pipeline.runtime import Runtime
from pipeline.settings import Settings

JITTER_SHARE = 0.1
EMULATOR_CREDITS = 100_000_000
SETTLE_S = 2.0
SUBMIT_TIMEOUT_WAVES = 10


def main() -> None:
    args = parse_args()
    started = time.monotonic()
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("FILLPIPE_", "AWS_"))}
    names = [f"brand-{chr(ord('a') + index)}" for index in range(args.accounts)]
    keys = {name: f"bench-{name}-{secrets.token_hex(8)}" for name in names}
    with tempfile.TemporaryDirectory(prefix="fillpipe-accounts-") as tmp:
        accounts_file = Path(tmp) / "accounts.toml"
        accounts_file.write_text(accounts_toml(names, args.slots))
        environ = {**base, "FILLPIPE_ACCOUNTS_FILE": str(accounts_file), **key_env(keys)}
        emulator_env = {
            "FILLPIPE_EMULATOR_ACCOUNTS": json.dumps(
                {key: {"slots": 2 * args.slots} for key in keys.values()}
            ),
            "FILLPIPE_EMULATOR_INITIAL_CREDITS": str(EMULATOR_CREDITS),
            "FILLPIPE_EMULATOR_LATENCY_BASE_S": str(args.latency_s),
            "FILLPIPE_EMULATOR_LATENCY_PER_MP_S": "0",
            "FILLPIPE_EMULATOR_LATENCY_JITTER_S": str(args.latency_s * JITTER_SHARE),
        }
        with EmbeddedStack(Path(tmp) / "stack", environ, emulator_env=emulator_env) as stack:
            AccountsBench(stack, args, Path(tmp), {**environ, **stack.env}, keys).run()
    print(f"bench took {time.monotonic() - started:.0f} s")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=3)
    parser.add_argument("--slots", type=int, default=24)
    parser.add_argument("--jobs-per-account", type=int, default=240)
    parser.add_argument("--latency-s", type=float, default=2.0)
    parser.add_argument("--size-px", type=int, default=64)
    return parser.parse_args()


def accounts_toml(names: Sequence[str], slots: int) -> str:
    return "".join(
        f'[accounts.{name}]\nkey_env = "{env_name(name)}"\nslots = {slots}\n\n' for name in names
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
    ) -> None:
        self.stack, self.args, self.tmp, self.env, self.keys = stack, args, tmp, env, keys
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
        first = next(iter(self.keys))
        print_run("one account", self.run_manifest("one", [first]))
        print_run(f"{args.accounts} accounts", self.run_manifest("all", list(self.keys)))
        print_high_water(self.admin.get("/admin/stats").json()["accounts"], self.keys, args)
        self.admin.close()

    def run_manifest(self, label: str, accounts: Sequence[str]) -> dict[str, SlotUse]:
        """Submit and wait for a manifest of each account's jobs, interleaved; each
        account's provider-side figures."""
        manifest = self.tmp / f"manifest-{label}.jsonl"
        per_account = {
            name: manifest_rows(
                self.inputs, self.args.jobs_per_account, self.finetunes[name], "jpeg"
            )
            for name in accounts
        }
        rows = [
            {**rows[index], "id": f"{name}-{index:04d}"}
            for index in range(self.args.jobs_per_account)
            for name, rows in per_account.items()
        ]
        manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
        time.sleep(SETTLE_S)
        known = {task["id"] for task in self.tasks()}
        wall_s = self.submit(manifest)
        print(f"\n{label}: {len(rows)} jobs, fillpipe submit --wait {wall_s:.1f} s")
        tasks = [task for task in self.tasks() if task["id"] not in known]
        return {
            name: slot_use(
                [task for task in tasks if task["owner"] == self.keys[name]], self.args.slots
            )
            for name in accounts
        }

    def submit(self, manifest: Path) -> float:
        waves = -(-self.args.jobs_per_account // self.args.slots)
        timeout_s = 120 + SUBMIT_TIMEOUT_WAVES * waves * self.args.latency_s
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


def print_run(label: str, uses: Mapping[str, SlotUse]) -> None:
    print(
        f"{'account':12}{'tasks':>6}{'gap p50 ms':>12}{'gap p99 ms':>12}"
        f"{'makespan s':>12}{'floor s':>9}{'ratio':>8}"
    )
    for name, use in uses.items():
        print(
            f"{name:12}{use.tasks:>6}{use.gap_ms(50):>12.1f}{use.gap_ms(99):>12.1f}"
            f"{use.makespan_s:>12.2f}{use.floor_s:>9.2f}{use.ratio:>8.3f}"
        )


def print_high_water(
    stats: Mapping[str, Mapping[str, Any]], keys: Mapping[str, str], args: argparse.Namespace
) -> None:
    marks = {
        name: stats.get(key, {}).get("active_tasks_high_water", 0) for name, key in keys.items()
    }
    over = [name for name, mark in marks.items() if mark > args.slots]
    shown = ", ".join(f"{name} {mark}" for name, mark in marks.items())
    verdict = f"over the limit: {', '.join(over)}" if over else "never above any limit"
    print(f"\nmost active tasks at once per account (limit {args.slots}): {shown}; {verdict}")


if __name__ == "__main__":
    main()
