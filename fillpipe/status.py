"""`fillpipe status BATCH`: a batch's counts by state and its spend so far."""

from __future__ import annotations

import json
from collections.abc import Mapping

import click
from rich.console import Console
from rich.table import Table

from pipeline.errors import InputError
from pipeline.ledger import BatchSummary, Ledger
from pipeline.models import JobState
from pipeline.settings import Settings

CREDITS_PER_USD = 100


def show_status(batch_id: str, environ: Mapping[str, str], *, as_json: bool) -> None:
    """Print the batch's summary; `InputError` if the ledger does not know it."""
    ledger = Ledger.from_url(Settings.from_environ(environ).redis_url)
    try:
        summary = ledger.summary(batch_id)
    finally:
        ledger.redis.close()
    if summary is None:
        raise InputError(f"no batch {batch_id!r} in this ledger (check FILLPIPE_REDIS_URL)")
    if as_json:
        click.echo(json.dumps(summary_json(summary)))
    else:
        Console().print(summary_table(summary))


def summary_json(summary: BatchSummary) -> dict[str, object]:
    return {
        "batch": summary.batch_id,
        "total": summary.total,
        "finished": summary.finished,
        "done": summary.done,
        "counts": {state.value: summary.counts.get(state, 0) for state in JobState},
        "cost_credits": summary.cost_credits,
        "cost_usd": round(summary.cost_credits / CREDITS_PER_USD, 4),
    }


def summary_table(summary: BatchSummary) -> Table:
    table = Table(title=f"batch {summary.batch_id}: {summary.finished}/{summary.total} finished")
    table.add_column("state")
    table.add_column("jobs", justify="right")
    for state in JobState:
        table.add_row(state.value, str(summary.counts.get(state, 0)))
    cost_usd = summary.cost_credits / CREDITS_PER_USD
    table.caption = f"cost so far: {summary.cost_credits:g} credits (${cost_usd:.2f})"
    return table
