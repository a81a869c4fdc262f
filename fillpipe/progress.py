"""Waiting for a batch with a live progress bar: counts per state, done/total,
throughput, ETA and cost so far."""

from __future__ import annotations

import time

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from pipeline.errors import FillpipeError, WaitTimedOut
from pipeline.ledger import BatchSummary, Ledger
from pipeline.models import CREDITS_PER_USD

POLL_INTERVAL_S = 0.25


class ThroughputColumn(ProgressColumn):
    """Jobs finished per minute, from rich's moving speed estimate."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed * 60:.0f} jobs/min", style="cyan")


_COLUMNS = (
    TextColumn("[progress.description]{task.description}"),
    BarColumn(),
    MofNCompleteColumn(),
    ThroughputColumn(),
    TextColumn("ETA"),
    TimeRemainingColumn(),
    TextColumn("elapsed"),
    TimeElapsedColumn(),
    TextColumn("{task.fields[cost]}"),
)


def wait_for_batch(
    ledger: Ledger,
    batch_id: str,
    console: Console,
    *,
    timeout_s: float | None = None,
) -> BatchSummary:
    """Show progress until every job of the batch has ended; return the final counts."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    with Progress(*_COLUMNS, console=console) as progress:
        bar = progress.add_task("waiting", total=None, cost="")
        while True:
            summary = _summary(ledger, batch_id)
            progress.update(
                bar,
                total=summary.total,
                completed=summary.finished,
                description=describe_counts(summary, ledger),
                cost=f"${summary.cost_credits / CREDITS_PER_USD:.2f}",
            )
            if summary.done:
                return summary
            if deadline is not None and time.monotonic() > deadline:
                raise WaitTimedOut(
                    f"batch {batch_id} not finished after {timeout_s:.0f} s; "
                    f"see `fillpipe status {batch_id}`"
                )
            time.sleep(POLL_INTERVAL_S)


def _summary(ledger: Ledger, batch_id: str) -> BatchSummary:
    summary = ledger.batches.summary(batch_id)
    if summary is None:
        raise FillpipeError(f"batch {batch_id} is not in the ledger")
    return summary


def describe_counts(summary: BatchSummary, ledger: Ledger) -> str:
    """Jobs per state; each account's slots in use, and why nothing is submitted if so."""
    counts = " ".join(f"{state.value}={count}" for state, count in summary.counts.items())
    return " | ".join([counts, *(escape(text) for text in accounts_text(ledger))])


def accounts_text(ledger: Ledger) -> list[str]:
    """Each account's slots in use and trouble, named when there are several."""
    texts = []
    for name, limits in ledger.pools.items():
        text = ledger.account(name).state().describe(limits.slots)
        texts.append(text if len(ledger.pools) == 1 else f"{name}: {text}")
    return texts
