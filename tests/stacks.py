"""Helpers for tests that drive a whole embedded stack: a finetune, a batch, waiting."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from fillpipe.demo import sample_spec, train_finetune
from fillpipe.samples import Sample
from fillpipe.stack import EmbeddedStack
from pipeline.batches import create_batch, new_batch_id
from pipeline.ledger import BatchSummary, Ledger
from pipeline.models import JobSpec
from pipeline.runtime import Runtime

__all__ = [
    "emulator_admin",
    "hermetic_environ",
    "print_log_tails",
    "running_stack",
    "train_finetune",
    "upload_batch",
    "wait_until_done",
]

STACK_START_TIMEOUT_S = 120


def hermetic_environ() -> dict[str, str]:
    """This process's environment without settings that would point at other servers."""
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("FILLPIPE_", "AWS_"))
    }


def upload_batch(
    rt: Runtime,
    finetune_id: str,
    samples: Sequence[Sample],
    *,
    tags: dict[str, str],
    priority: int = 1,
) -> tuple[str, list[JobSpec]]:
    """Upload each sample's image and mask, and record them as one batch (seed = index)."""
    batch_id = new_batch_id()
    specs = [
        sample_spec(rt, batch_id, sample, finetune_id, index, tags=tags)
        for index, sample in enumerate(samples, start=1)
    ]
    create_batch(rt, batch_id, specs, priority=priority)
    return batch_id, specs


def wait_until_done(ledger: Ledger, batch_id: str, *, timeout_s: float) -> BatchSummary:
    deadline = time.monotonic() + timeout_s
    while not (summary := ledger.batches.summary(batch_id)).done:
        assert time.monotonic() < deadline, f"batch not done after {timeout_s:.0f} s: {summary}"
        time.sleep(0.2)
    return summary


def emulator_admin(stack: EmbeddedStack) -> httpx.Client:
    """A client for the stack's emulator admin API (`/admin/stats`, `/admin/tasks`…)."""
    env = stack.env
    return httpx.Client(
        base_url=env["FILLPIPE_PROVIDER_URL"],
        headers={"x-admin-token": env["FILLPIPE_EMULATOR_ADMIN_TOKEN"]},
        timeout=10.0,
    )


@contextmanager
def running_stack(
    request: pytest.FixtureRequest,
    state_dir: Path,
    environ: Mapping[str, str],
    emulator_env: Mapping[str, str],
) -> Iterator[EmbeddedStack]:
    """An embedded stack started for a fixture, stopped after it, printing each
    service's log tail first if a test of the session failed."""
    stack = EmbeddedStack(state_dir, environ, emulator_env=emulator_env)
    stack.start(timeout_s=STACK_START_TIMEOUT_S)
    try:
        yield stack
    finally:
        if request.session.testsfailed:
            print_log_tails(stack)
        stack.stop()


def print_log_tails(embedded: EmbeddedStack) -> None:
    for log in sorted(embedded.state.logs.glob("*.log")):
        print(f"\n--- last lines of {log} ---")
        print(embedded.log_tail(log.stem))
