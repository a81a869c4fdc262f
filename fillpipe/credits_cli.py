"""`fillpipe credits`: each provider account's balance, in credits and US dollars.

`read_balances` asks every account; an account whose key is refused, that cannot be
reached or no longer offers the balance endpoint keeps its line, with the error. With
the ledger's settings (a shell that sourced stack.env), each line also shows what the
running batches will still spend on the account (`pipeline.spend`): `to-come` credits
for `jobs` jobs not ended yet.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

import click

from fillpipe.output import columns, data, emit_json, say, usd
from fillpipe.provider_cli import (
    EXIT_FAILURE,
    describe,
    load_accounts,
    run_provider_command,
)
from pipeline.accounts import Accounts
from pipeline.balances import AccountBalance
from pipeline.balances import read_balances as balances_of
from pipeline.errors import ConfigError
from pipeline.ledger import Ledger
from pipeline.settings import Settings
from pipeline.spend import SpendToCome, spend_to_come

CREDITS_HEADER = ("account", "flavor", "credits", "usd", "error")
TO_COME_HEADER = ("account", "flavor", "credits", "usd", "to-come", "jobs", "error")


def read_balances(accounts: Accounts) -> list[AccountBalance]:
    """Every account's balance, a withdrawn endpoint's error saying what to do instead."""
    return balances_of(accounts, describe=describe)


def balance_lines(
    balances: list[AccountBalance], to_come: Mapping[str, SpendToCome] | None = None
) -> list[str]:
    """A header, then one aligned line per account; with `to_come`, the running batches'
    jobs not ended and their estimated cost; a failed account's error last."""
    header = CREDITS_HEADER if to_come is None else TO_COME_HEADER
    rows = []
    for each in balances:
        row = [each.account, each.flavor]
        row += (
            ["-", "-"]
            if each.credits is None
            else [f"{each.credits:.2f}", f"${usd(each.credits):.2f}"]
        )
        if to_come is not None:
            spend = to_come.get(each.account, SpendToCome())
            row += [f"{spend.credits:.2f}", str(spend.jobs)]
        rows.append((*row, "" if each.error is None else f"error: {each.error}"))
    return columns([header, *rows], right=list(range(2, len(header) - 1)))


def show_credits(environ: Mapping[str, str], *, as_json: bool) -> None:
    balances = read_balances(load_accounts(environ))
    to_come = read_spend_to_come(environ)
    if as_json:
        emit_json({"accounts": [_with_to_come(each.as_json(), to_come) for each in balances]})
    else:
        for line in balance_lines(balances, to_come):
            data(line)
    if any(each.error is not None for each in balances):
        sys.exit(EXIT_FAILURE)


def read_spend_to_come(environ: Mapping[str, str]) -> dict[str, SpendToCome] | None:
    """What the running batches will still spend, per account; None (said on stderr)
    when the ledger's settings are not all there, as in a shell that only has the
    provider's."""
    try:
        settings = Settings.from_environ(environ)
    except ConfigError:
        say("(no running batches shown: the ledger's settings are not set; source stack.env)")
        return None
    ledger = Ledger.from_settings(settings)
    try:
        return spend_to_come(ledger, price_credits_per_mp=settings.price_credits_per_mp)
    finally:
        ledger.close()


def _with_to_come(
    row: dict[str, object], to_come: Mapping[str, SpendToCome] | None
) -> dict[str, object]:
    if to_come is None:
        return row
    spend = to_come.get(str(row["account"]), SpendToCome())
    return {**row, "to_come_jobs": spend.jobs, "to_come_credits": round(spend.credits, 2)}


@click.command()
@click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON document on stdout instead of lines."
)
def credits(as_json: bool) -> None:
    """Show each provider account's balance: name, flavour, credits and US dollars
    (100 credits = $1).

    An account whose key is refused or that cannot be reached shows the error on its
    line, and the exit code is then 1.
    """
    run_provider_command(lambda: show_credits(os.environ, as_json=as_json))
