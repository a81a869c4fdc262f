"""What the commands print, and where.

Data a script may read back (ids, URIs, paths, counts, JSON documents) goes to stdout as
plain lines written by click, which never wraps or crops them, whatever the terminal's
width or when stdout is a pipe. Chatter (what is happening, estimates, hints) goes to
stderr, as plain lines too, since it names ids as well. rich draws only what no script
reads: progress bars and spinners, on stderr.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime

import click
from rich.console import Console

from pipeline.errors import ConfigError, InputError
from pipeline.ledger import AccountState, BatchSummary
from pipeline.models import CREDITS_PER_USD
from pipeline.states import JobState

COLUMN_GAP = "  "
EXIT_BAD_INPUT = 2


def data(line: str = "") -> None:
    """One line of output for scripts, on stdout."""
    click.echo(line)


def say(text: str) -> None:
    """A message for the person at the terminal, on stderr."""
    click.echo(text, err=True)


def emit_json(document: object) -> None:
    """One JSON document on stdout (UTF-8, not ASCII-escaped)."""
    click.echo(json.dumps(document, ensure_ascii=False))


def progress_console() -> Console:
    """The console of progress bars and spinners: stderr, never stdout."""
    return Console(stderr=True)


def columns(rows: Iterable[Sequence[str]], *, right: Iterable[int] = ()) -> list[str]:
    """`rows` as aligned lines, two spaces between columns; columns in `right` are
    right-aligned. The last column is never padded, so it may hold free text (a URI,
    a path, an error)."""
    table = [list(row) for row in rows]
    if not table:
        return []
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    right_aligned = set(right)
    lines = []
    for row in table:
        cells = [
            cell.rjust(widths[i]) if i in right_aligned else cell.ljust(widths[i])
            for i, cell in enumerate(row[:-1])
        ]
        lines.append(COLUMN_GAP.join([*cells, row[-1]]).rstrip())
    return lines


def iso_utc(timestamp: float) -> str:
    """`2026-11-24T10:02:03Z`: a Unix time as ISO 8601 in UTC, to the second."""
    moment = datetime.fromtimestamp(timestamp, UTC).replace(microsecond=0)
    return moment.isoformat().replace("+00:00", "Z")


def usd(credits: float) -> float:
    """Credits in US dollars, rounded to a hundredth of a cent."""
    return round(credits / CREDITS_PER_USD, 4)


def nonzero_counts(summary: BatchSummary) -> str:
    """`queued=3 stored=5`: the states a batch's jobs are in, in the pipeline's order."""
    counts = summary.counts
    return " ".join(f"{state.value}={counts[state]}" for state in JobState if counts.get(state))


def batch_json(summary: BatchSummary) -> dict[str, object]:
    """A batch as `status --json` and `batches --json` show it."""
    budget = summary.budget_credits
    return {
        "batch": summary.batch_id,
        "source": summary.source or None,
        "created": iso_utc(summary.created_at),
        "total": summary.total,
        "finished": summary.finished,
        "done": summary.done,
        "counts": {state.value: summary.counts.get(state, 0) for state in JobState},
        "cost_credits": summary.cost_credits,
        "cost_usd": usd(summary.cost_credits),
        "budget_credits": budget,
        "budget_usd": None if budget is None else usd(budget),
        "priority": summary.priority,
        "cancelled": summary.cancelled,
    }


def account_json(account: AccountState, slots: int) -> dict[str, object]:
    return {
        "slots": slots,
        "slots_in_use": account.slots_in_use,
        "paused": account.paused_reason,
        "cooldown_s": round(account.cooldown_s, 3),
        "spent_today_credits": round(account.spent_today_credits, 2),
    }


def cost_text(credits: float) -> str:
    return f"{credits:g} credits (${credits / CREDITS_PER_USD:.2f})"


def exit_on_known_errors(action: Callable[[], object]) -> None:
    """Run `action`; turn configuration and input errors into a message and exit code 2."""
    try:
        action()
    except (ConfigError, InputError) as error:
        click.echo(f"fillpipe: {error}", err=True)
        sys.exit(EXIT_BAD_INPUT)
