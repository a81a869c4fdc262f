"""Batch commands: `status`, `results`, `retry`, `cancel`, and `resume` for the account."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Literal

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fillpipe.progress import wait_for_batch
from pipeline.errors import InputError
from pipeline.ledger import AccountState, BatchSummary, Ledger
from pipeline.models import CREDITS_PER_USD
from pipeline.reports import RESULT_FIELDS, result_row
from pipeline.settings import Settings
from pipeline.states import JobState

ResultFormat = Literal["jsonl", "csv"]


@contextmanager
def _ledger(environ: Mapping[str, str]) -> Iterator[Ledger]:
    ledger = Ledger.from_settings(Settings.from_environ(environ))
    try:
        yield ledger
    finally:
        ledger.close()


def _require_summary(ledger: Ledger, batch_id: str) -> BatchSummary:
    summary = ledger.batches.summary(batch_id)
    if summary is None:
        raise InputError(f"no batch {batch_id!r} in this ledger (check FILLPIPE_REDIS_URL)")
    return summary


def show_status(
    batch_id: str, environ: Mapping[str, str], *, as_json: bool, watch: bool = False
) -> None:
    """Print the batch's summary (after live progress until it ends, with `watch`)."""
    slots = Settings.from_environ(environ).provider_slots
    with _ledger(environ) as ledger:
        summary = _require_summary(ledger, batch_id)
        if watch:
            summary = wait_for_batch(ledger, batch_id, Console(stderr=True), slots=slots)
        account = ledger.account.state()
    if as_json:
        click.echo(json.dumps(summary_json(summary, account, slots)))
    else:
        Console().print(summary_table(summary, account, slots))


def print_results(batch_id: str, environ: Mapping[str, str], *, fmt: ResultFormat) -> None:
    """One line per job, in manifest order, as JSON Lines or CSV on stdout."""
    with _ledger(environ) as ledger:
        _require_summary(ledger, batch_id)
        rows = (result_row(record) for record in ledger.jobs.of_batch(batch_id))
        if fmt == "csv":
            writer = csv.DictWriter(sys.stdout, fieldnames=RESULT_FIELDS, lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        else:
            for row in rows:
                click.echo(json.dumps(row, ensure_ascii=False))


def retry_batch(batch_id: str, environ: Mapping[str, str]) -> None:
    """Queue the batch's failed jobs again, each as a new attempt."""
    with _ledger(environ) as ledger:
        _require_summary(ledger, batch_id)
        count = ledger.batches.retry_failed(batch_id)
    click.echo(f"batch {batch_id}: {count} failed jobs queued again")


def resume_account(environ: Mapping[str, str]) -> None:
    """Lift a pause of the provider account (after a 402 or a refused key)."""
    with _ledger(environ) as ledger:
        reason = ledger.account.resume()
        ledger.slots.dispatch()
    if reason is None:
        click.echo("the provider account was not paused; dispatching anyway")
    else:
        click.echo(f"resumed (was paused: {reason})")


def cancel_batch(batch_id: str, environ: Mapping[str, str]) -> None:
    """Submit nothing more of the batch; jobs already with the provider still finish."""
    with _ledger(environ) as ledger:
        _require_summary(ledger, batch_id)
        cancelled = ledger.batches.cancel(batch_id)
    click.echo(f"batch {batch_id}: {cancelled} queued jobs cancelled; in-flight jobs will finish")


def summary_json(summary: BatchSummary, account: AccountState, slots: int) -> dict[str, object]:
    return {
        "batch": summary.batch_id,
        "total": summary.total,
        "finished": summary.finished,
        "done": summary.done,
        "counts": {state.value: summary.counts.get(state, 0) for state in JobState},
        "cost_credits": summary.cost_credits,
        "cost_usd": round(summary.cost_credits / CREDITS_PER_USD, 4),
        "priority": summary.priority,
        "cancelled": summary.cancelled,
        "account": {
            "slots": slots,
            "slots_in_use": account.slots_in_use,
            "paused": account.paused_reason,
            "cooldown_s": round(account.cooldown_s, 3),
        },
    }


def summary_table(summary: BatchSummary, account: AccountState, slots: int) -> Table:
    table = Table(title=f"batch {summary.batch_id}: {summary.finished}/{summary.total} finished")
    table.add_column("state")
    table.add_column("jobs", justify="right")
    for state in JobState:
        table.add_row(state.value, str(summary.counts.get(state, 0)))
    cost_usd = summary.cost_credits / CREDITS_PER_USD
    table.caption = (
        f"cost so far: {summary.cost_credits:g} credits (${cost_usd:.2f}); "
        f"provider {escape(account.describe(slots))}"
    )
    return table
