"""`fillpipe check`: the preflight a user runs before the first real batch.

The checks themselves live in `pipeline.preflight`; this prints them, one line each on
stdout (or one JSON document), and sets the exit code.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import click

from fillpipe.output import columns, data, emit_json, exit_on_known_errors, say

if TYPE_CHECKING:
    from pipeline.preflight import CheckResult

EXIT_FAILURE = 1
DEFAULT_TIMEOUT_S = 3.0


@click.command()
@click.option(
    "--timeout-s",
    type=click.FloatRange(0.1, 60.0),
    default=DEFAULT_TIMEOUT_S,
    show_default=True,
    help="How long each network check may wait for an answer.",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON document on stdout instead of lines."
)
def check(timeout_s: float, as_json: bool) -> None:
    """Check the settings and every server fillpipe needs, before a real batch.

    One line per check on stdout: ok, warn or FAIL, what was checked, and for a problem
    what is wrong and how to fix it. Checks: the settings parse; each provider account's
    key is accepted and it has credits; the bucket takes, tags, returns and deletes a
    probe object (under outputs/fillpipe-check/); Redis answers PING and its
    maxmemory-policy is noeviction; the signing keys verify a token made now; and with
    callbacks on, the receiver answers at FILLPIPE_PUBLIC_URL/healthz. Each waits at most
    --timeout-s, so a dead server makes a FAIL line, not a hang. Nothing is spent and
    no secret is printed. Exit code 0 when nothing failed (warnings allowed), 1 when a
    check failed, 2 when the settings themselves are invalid.
    """
    exit_on_known_errors(lambda: run_check(os.environ, timeout_s=timeout_s, as_json=as_json))


def run_check(environ: Mapping[str, str], *, timeout_s: float, as_json: bool) -> None:
    """Read the settings (ConfigError: exit 2), run every check, print, exit 1 on a failure."""
    from pipeline.preflight import any_failed, run_checks
    from pipeline.settings import Settings

    settings = Settings.from_environ(environ)
    accounts_file = environ.get("FILLPIPE_ACCOUNTS_FILE", "").strip() or None
    results = run_checks(settings, timeout_s=timeout_s, accounts_file=accounts_file)
    failed = any_failed(results)
    if as_json:
        emit_json({"ok": not failed, "checks": [result.as_dict() for result in results]})
    else:
        for line in check_lines(results):
            data(line)
    say(summary(results))
    if failed:
        sys.exit(EXIT_FAILURE)


def check_lines(results: Sequence[CheckResult]) -> list[str]:
    """`ok    s3         put, tagged, …` / `FAIL  redis  Redis at … does not answer: fix`."""
    return columns(
        (
            result.status.label,
            result.name,
            f"{result.detail}: {result.fix}" if result.fix else result.detail,
        )
        for result in results
    )


def summary(results: Sequence[CheckResult]) -> str:
    """`6 checks: 5 ok, 1 FAIL` (for the person at the terminal, on stderr)."""
    tally: dict[str, int] = {}
    for result in results:
        tally[result.status.label] = tally.get(result.status.label, 0) + 1
    shown = ", ".join(f"{number} {label}" for label, number in tally.items())
    return f"{len(results)} checks: {shown}"
