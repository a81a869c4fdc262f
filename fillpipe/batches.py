"""Batch commands: `status`, `results`, `retry`, `cancel`, `batches`, and `resume` for the
account. Everything a script reads goes to stdout as plain lines or one JSON document
(see `fillpipe.output`)."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Literal

from fillpipe.output import (
    account_json,
    batch_json,
    columns,
    cost_text,
    data,
    emit_json,
    iso_utc,
    nonzero_counts,
    progress_console,
    say,
)
from fillpipe.progress import wait_for_batch
from pipeline.errors import InputError, UnknownAccount
from pipeline.ledger import AccountState, BatchSummary, Ledger
from pipeline.models import CREDITS_PER_USD
from pipeline.reports import CSV_FIELDS, csv_row, is_flagged, result_row
from pipeline.settings import Settings
from pipeline.states import JobState

ResultFormat = Literal["jsonl", "csv"]
BATCHES_HEADER = ("batch", "created", "jobs", "states", "credits", "usd", "source")


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
    with _ledger(environ) as ledger:
        summary = _require_summary(ledger, batch_id)
        if watch:
            summary = wait_for_batch(ledger, batch_id, progress_console())
        accounts = account_states(ledger)
    if as_json:
        emit_json(summary_json(summary, accounts))
    else:
        for line in summary_lines(summary, accounts):
            data(line)


def account_states(ledger: Ledger) -> list[tuple[AccountState, int]]:
    """Each configured account's state and slot count."""
    return [(ledger.account(name).state(), limits.slots) for name, limits in ledger.pools.items()]


def list_batches(environ: Mapping[str, str], *, limit: int, as_json: bool) -> None:
    """The `limit` most recent batches, newest first: a table or one JSON document."""
    with _ledger(environ) as ledger:
        summaries = ledger.batches.recent(limit)
    if as_json:
        emit_json({"batches": [batch_json(summary) for summary in summaries]})
        return
    if not summaries:
        say("no batches in this ledger yet (check FILLPIPE_REDIS_URL)")
        return
    for line in batches_lines(summaries):
        data(line)


def print_results(
    batch_id: str, environ: Mapping[str, str], *, fmt: ResultFormat, flagged: bool = False
) -> None:
    """One line per job (with `flagged`, per flagged job), in manifest order, as JSON
    Lines or CSV on stdout."""
    with _ledger(environ) as ledger:
        _require_summary(ledger, batch_id)
        rows = (result_row(record) for record in ledger.jobs.of_batch(batch_id))
        if flagged:
            rows = (row for row in rows if is_flagged(row))
        if fmt == "csv":
            writer = csv.DictWriter(sys.stdout, fieldnames=CSV_FIELDS, lineterminator="\n")
            writer.writeheader()
            writer.writerows(csv_row(row) for row in rows)
        else:
            for row in rows:
                data(json.dumps(row, ensure_ascii=False))


def retry_batch(batch_id: str, environ: Mapping[str, str]) -> None:
    """Queue the batch's failed jobs again, each as a new attempt."""
    with _ledger(environ) as ledger:
        _require_summary(ledger, batch_id)
        count = ledger.batches.retry_failed(batch_id)
    data(f"batch {batch_id}: {count} failed jobs queued again")


def resume_account(environ: Mapping[str, str], name: str | None = None) -> None:
    """Lift the pause of account `name` (after a 402 or a refused key), or of every
    account when no name is given."""
    with _ledger(environ) as ledger:
        names = [ledger.account(name).name] if name else list(ledger.pools)
        for each in names:
            if each not in ledger.pools:
                raise UnknownAccount(
                    f"no provider account named {each!r} (configured: {', '.join(ledger.pools)})"
                )
            reason = ledger.account(each).resume()
            ledger.slots.dispatch(each)
            if reason is None:
                data(f"account {each}: was not paused; dispatching anyway")
            else:
                data(f"account {each}: resumed (was paused: {reason})")


def cancel_batch(batch_id: str, environ: Mapping[str, str]) -> None:
    """Submit nothing more of the batch; jobs already with the provider still finish."""
    with _ledger(environ) as ledger:
        _require_summary(ledger, batch_id)
        cancelled = ledger.batches.cancel(batch_id)
    data(f"batch {batch_id}: {cancelled} queued jobs cancelled; in-flight jobs will finish")


def summary_json(
    summary: BatchSummary, accounts: list[tuple[AccountState, int]]
) -> dict[str, object]:
    """`status --json`: the batch (see `batch_json`) and each provider account."""
    return {
        **batch_json(summary),
        "accounts": {state.name: account_json(state, slots) for state, slots in accounts},
    }


def summary_lines(summary: BatchSummary, accounts: list[tuple[AccountState, int]]) -> list[str]:
    """`status`: the batch's facts as `name  value` lines, then the jobs in each state."""
    cost = cost_text(summary.cost_credits)
    if summary.budget_credits is not None:
        cost += f"; budget {cost_text(summary.budget_credits)}"
    facts = [
        ("batch", summary.batch_id),
        ("source", summary.source or "(not recorded)"),
        ("created", iso_utc(summary.created_at)),
        ("finished", f"{summary.finished}/{summary.total}"),
        ("cost", cost),
        ("priority", str(summary.priority)),
        *((f"account {state.name}", state.describe(slots)) for state, slots in accounts),
    ]
    if summary.cancelled:
        facts.append(("cancelled", "yes: no job of it is submitted any more"))
    states = [(state.value, str(summary.counts.get(state, 0))) for state in JobState]
    return [*columns(facts), "", *columns(states, right=[1])]


def batches_lines(summaries: list[BatchSummary]) -> list[str]:
    """`batches`: a header, then one aligned line per batch (the source last)."""
    rows = [
        (
            summary.batch_id,
            iso_utc(summary.created_at),
            str(summary.total),
            nonzero_counts(summary) or "-",
            f"{summary.cost_credits:.2f}",
            f"{summary.cost_credits / CREDITS_PER_USD:.2f}",
            summary.source or "-",
        )
        for summary in summaries
    ]
    return columns([BATCHES_HEADER, *rows], right=[2, 4, 5])
