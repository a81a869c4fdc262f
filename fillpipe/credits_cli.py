"""`fillpipe credits`: each provider account's balance, in credits and US dollars.

`read_balances` asks every account; an account whose key is refused, that cannot be
reached or no longer offers the balance endpoint keeps its line, with the error.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass

import click

from fillpipe.output import columns, data, emit_json, usd
from fillpipe.provider_cli import (
    EXIT_FAILURE,
    PROVIDER_ERRORS,
    client_for,
    describe,
    load_accounts,
    run_provider_command,
)
from pipeline.accounts import Accounts
from pipeline.finetunes import credits as account_credits

CREDITS_HEADER = ("account", "flavor", "credits", "usd", "error")


@dataclass(frozen=True)
class AccountBalance:
    """One account's balance, or why it could not be read (`error`)."""

    account: str
    flavor: str
    credits: float | None
    error: str | None = None

    def as_json(self) -> dict[str, object]:
        return {
            "account": self.account,
            "flavor": self.flavor,
            "credits": self.credits,
            "usd": None if self.credits is None else usd(self.credits),
            "error": self.error,
        }


def read_balances(accounts: Accounts) -> list[AccountBalance]:
    """Every account's balance, in the accounts' order, each asked on its own."""
    balances = []
    for account in accounts:
        with client_for(account) as client:
            try:
                balance = AccountBalance(account.name, account.flavor, account_credits(client))
            except PROVIDER_ERRORS as error:
                balance = AccountBalance(account.name, account.flavor, None, describe(error))
        balances.append(balance)
    return balances


def balance_lines(balances: list[AccountBalance]) -> list[str]:
    """A header, then one aligned line per account; a failed account's error last."""
    rows = [
        (
            each.account,
            each.flavor,
            "-" if each.credits is None else f"{each.credits:.2f}",
            "-" if each.credits is None else f"${usd(each.credits):.2f}",
            "" if each.error is None else f"error: {each.error}",
        )
        for each in balances
    ]
    return columns([CREDITS_HEADER, *rows], right=[2, 3])


def show_credits(environ: Mapping[str, str], *, as_json: bool) -> None:
    balances = read_balances(load_accounts(environ))
    if as_json:
        emit_json({"accounts": [each.as_json() for each in balances]})
    else:
        for line in balance_lines(balances):
            data(line)
    if any(each.error is not None for each in balances):
        sys.exit(EXIT_FAILURE)


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
