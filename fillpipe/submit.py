"""`fillpipe submit MANIFEST`: runs the intake (`pipeline.intake`) and prints.

The intake validates the manifest (every problem listed, exit 2, nothing uploaded or
recorded) and creates the batch; this module then wakes the dispatcher and, with
`--wait`, follows the batch to its end. The batch id (or, with `--json`, one JSON
document) goes to stdout; the estimate and progress go to stderr.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from fillpipe.output import batch_json, cost_text, data, emit_json, progress_console, say, usd
from fillpipe.progress import wait_for_batch
from pipeline import intake
from pipeline.errors import PermanentError, RetryableError
from pipeline.finetunes import credits as account_credits
from pipeline.intake import Submission, Validation
from pipeline.ledger import DEFAULT_PRIORITY, BatchSummary
from pipeline.models import CREDITS_PER_USD
from pipeline.notify_target import check_target
from pipeline.runtime import Runtime
from pipeline.settings import Settings
from pipeline.states import JobState

EXIT_FAILURE = 1


@dataclass(frozen=True)
class SubmitOptions:
    """How `fillpipe submit` runs. `check_inputs=None` checks small batches only."""

    dry_run: bool = False
    wait: bool = False
    budget_usd: float | None = None
    check_inputs: bool | None = None
    priority: int = DEFAULT_PRIORITY
    as_json: bool = False
    notify_url: str | None = None


def run_submit(manifest: str, environ: Mapping[str, str], options: SubmitOptions) -> None:
    """Validate, then (unless a dry run) create and enqueue the batch and print its id;
    with `wait`, follow it to the end and exit 1 unless every job was stored."""
    settings = Settings.from_environ(environ)
    if options.notify_url is not None:
        check_target(settings, options.notify_url)  # before anything is read or recorded
    rt = Runtime.from_settings(settings)
    try:
        validation = intake.validate(rt, manifest, check_inputs=options.check_inputs)
        say(validated_text(validation))
        if options.dry_run:
            coverage = balance_coverage(rt, validation)
            for line in coverage_lines(coverage):
                say(line)
            _report(validation, None, None, options, coverage)
            if any(each.short for each in coverage):
                raise SystemExit(EXIT_FAILURE)
            return
        submission = intake.create(
            rt,
            validation,
            budget_usd=options.budget_usd,
            priority=options.priority,
            notify_url=options.notify_url,
        )
        say(f"batch {submission.batch_id}: {submission.rows} jobs queued")
        if not options.as_json:
            data(submission.batch_id)
        final = None
        if options.wait:
            final = wait_for_batch(rt.ledger, submission.batch_id, progress_console())
        _report(validation, submission, final, options)
    finally:
        rt.close()
    if final is not None and _failed(final):
        raise SystemExit(EXIT_FAILURE)


@dataclass(frozen=True)
class Coverage:
    """What a batch should cost on one account against the account's balance."""

    account: str
    estimated_credits: float
    balance_credits: float | None
    error: str | None = None

    @property
    def short(self) -> bool:
        """The balance is known and below the estimate."""
        return self.balance_credits is not None and self.balance_credits < self.estimated_credits

    def as_json(self) -> dict[str, object]:
        return {
            "estimated_credits": round(self.estimated_credits, 4),
            "balance_credits": self.balance_credits,
            "enough": None if self.balance_credits is None else not self.short,
            "error": self.error,
        }


def balance_coverage(rt: Runtime, validation: Validation) -> list[Coverage]:
    """For a dry run: each account's share of the estimate against its balance (asked
    of the provider; a balance that cannot be read is None, with why)."""
    coverage = []
    for account, estimate in validation.estimated_credits_by_account.items():
        try:
            balance: float | None = account_credits(rt.providers[account])
            error = None
        except (RetryableError, PermanentError) as failure:
            balance, error = None, str(failure)
        coverage.append(Coverage(account, estimate, balance, error))
    return coverage


def coverage_lines(coverage: list[Coverage]) -> list[str]:
    lines = []
    for each in coverage:
        line = f"account {each.account}: ~{estimate_text(each.estimated_credits)} of this batch"
        if each.balance_credits is None:
            line += f"; balance unknown ({each.error})"
        else:
            line += f"; balance {estimate_text(each.balance_credits)}"
            if each.short:
                line += " -- NOT ENOUGH: top up before submitting, or the account pauses"
        lines.append(line)
    return lines


def validated_text(validation: Validation) -> str:
    """What validation found, for stderr: the rows, and the cost estimate if inputs were read."""
    rows = f"{validation.rows} rows valid"
    if validation.estimated_credits is None:
        return f"{rows}; inputs not read in advance, so no cost estimate (see --check-inputs)"
    return f"{rows}, inputs checked; estimated cost {estimate_text(validation.estimated_credits)}"


def estimate_text(credits: float) -> str:
    return f"{credits:.2f} credits (${credits / CREDITS_PER_USD:.2f})"


def _report(
    validation: Validation,
    submission: Submission | None,
    final: BatchSummary | None,
    options: SubmitOptions,
    coverage: list[Coverage] | None = None,
) -> None:
    """The result on stdout (one JSON document with `as_json`) or, in words, on stderr."""
    if options.as_json:
        document = submit_json(validation, submission, final, options)
        if coverage is not None:
            document["accounts"] = {each.account: each.as_json() for each in coverage}
        emit_json(document)
    elif submission is None:
        data(f"{validation.manifest}: {validation.rows} rows valid; nothing submitted (--dry-run)")
    elif final is not None:
        counts = " ".join(f"{state.value}={n}" for state, n in final.counts.items() if n)
        say(f"batch {final.batch_id} ended: {counts}; cost {cost_text(final.cost_credits)}")


def submit_json(
    validation: Validation,
    submission: Submission | None,
    final: BatchSummary | None,
    options: SubmitOptions,
) -> dict[str, object]:
    """`submit --json`: the batch (None for a dry run), what was validated and estimated,
    and with `--wait` the batch at its end (as `status --json` shows a batch)."""
    credits = validation.estimated_credits
    return {
        "batch": None if submission is None else submission.batch_id,
        "source": validation.source,
        "rows": validation.rows,
        "inputs_checked": validation.inputs_checked,
        "estimated_credits": None if credits is None else round(credits, 4),
        "estimated_usd": None if credits is None else usd(credits),
        "dry_run": submission is None,
        "budget_usd": options.budget_usd,
        "priority": options.priority,
        "final": None if final is None else batch_json(final),
    }


def _failed(summary: BatchSummary) -> bool:
    return summary.counts.get(JobState.STORED, 0) < summary.total
