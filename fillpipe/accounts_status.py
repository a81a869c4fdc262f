"""`fillpipe status` without a batch: every provider account at a glance.

Per account: its flavour, slots in use against its limit, whether it is paused (and
why) or cooling down, the credits it has spent today (UTC) as the ledger recorded them,
its balance as the provider states it, and what the running batches will still spend on
it (`pipeline.spend`), in credits (100 credits = $1). A balance that cannot be read (the
key refused, the provider unreachable) shows as `-`, with the error at the end of its
line; the rest still shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from fillpipe.credits_cli import AccountBalance, read_balances
from fillpipe.output import columns, data, emit_json, usd
from pipeline.accounts import ProviderAccount
from pipeline.ledger import AccountState, Ledger
from pipeline.settings import Settings
from pipeline.spend import SpendToCome, spend_to_come

# The free text (why paused, a balance that could not be read) comes last.
STATUS_HEADER = ("account", "flavor", "slots", "today", "balance", "to-come", "jobs", "state")


@dataclass(frozen=True)
class AccountStatus:
    """One account as `fillpipe status` shows it."""

    account: ProviderAccount
    state: AccountState
    balance: AccountBalance
    to_come: SpendToCome

    def state_text(self) -> str:
        """Running, paused or cooling down; then what could not be read or was guessed."""
        if self.state.paused_reason:
            text = f"PAUSED: {self.state.paused_reason} (fillpipe resume {self.account.name})"
        elif self.state.cooldown_s:
            text = f"cooling down {self.state.cooldown_s:.1f} s"
        else:
            text = "running"
        if self.balance.error is not None:
            text += f"; balance unknown: {self.balance.error}"
        if self.to_come.guessed:
            text += "; to-come partly priced per megapixel (no job of its batch has a cost yet)"
        return text

    def row(self) -> tuple[str, ...]:
        credits = self.balance.credits
        return (
            self.account.name,
            self.account.flavor,
            f"{self.state.slots_in_use}/{self.account.slots}",
            f"{self.state.spent_today_credits:.2f}",
            "-" if credits is None else f"{credits:.2f}",
            f"{self.to_come.credits:.2f}",
            str(self.to_come.jobs),
            self.state_text(),
        )

    def as_json(self) -> dict[str, object]:
        return {
            "account": self.account.name,
            "flavor": self.account.flavor,
            "slots": self.account.slots,
            "slots_in_use": self.state.slots_in_use,
            "paused": self.state.paused_reason,
            "cooldown_s": round(self.state.cooldown_s, 3),
            "spent_today_credits": round(self.state.spent_today_credits, 2),
            "spent_today_usd": usd(self.state.spent_today_credits),
            "balance_credits": self.balance.credits,
            "balance_error": self.balance.error,
            "to_come_jobs": self.to_come.jobs,
            "to_come_credits": round(self.to_come.credits, 2),
            "to_come_estimated": self.to_come.guessed,
        }


def account_statuses(settings: Settings, ledger: Ledger) -> list[AccountStatus]:
    """Every configured account's status, in the accounts' order."""
    balances = {balance.account: balance for balance in read_balances(settings.accounts)}
    to_come = spend_to_come(ledger, price_credits_per_mp=settings.price_credits_per_mp)
    return [
        AccountStatus(
            account,
            ledger.account(account.name).state(),
            balances[account.name],
            to_come.get(account.name, SpendToCome()),
        )
        for account in settings.accounts
    ]


def show_accounts(environ: Mapping[str, str], *, as_json: bool) -> None:
    """Print every account's status: an aligned table, or one JSON document."""
    settings = Settings.from_environ(environ)
    ledger = Ledger.from_settings(settings)
    try:
        statuses = account_statuses(settings, ledger)
    finally:
        ledger.close()
    if as_json:
        emit_json({"accounts": [status.as_json() for status in statuses]})
        return
    rows = [STATUS_HEADER, *(status.row() for status in statuses)]
    for line in columns(rows, right=[3, 4, 5, 6]):
        data(line)
