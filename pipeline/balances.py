"""Each provider account's balance, as the provider states it, or why it could not be read."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pipeline.accounts import Accounts
from pipeline.errors import PermanentError, RetryableError
from pipeline.finetunes import credits as account_credits
from pipeline.models import CREDITS_PER_USD
from pipeline.provider import ProviderClient

# What the provider said no to, or could not answer: reported beside the account.
PROVIDER_ERRORS = (RetryableError, PermanentError)


@dataclass(frozen=True)
class AccountBalance:
    """One account's balance, or why it could not be read (`error`)."""

    account: str
    flavor: str
    credits: float | None
    error: str | None = None

    @property
    def usd(self) -> float | None:
        """The balance in US dollars, rounded to a hundredth of a cent."""
        return None if self.credits is None else round(self.credits / CREDITS_PER_USD, 4)

    def as_json(self) -> dict[str, object]:
        return {
            "account": self.account,
            "flavor": self.flavor,
            "credits": self.credits,
            "usd": self.usd,
            "error": self.error,
        }


def read_balances(
    accounts: Accounts,
    *,
    describe: Callable[[Exception], str] = str,
    timeout_s: float | None = None,
) -> list[AccountBalance]:
    """Every account's balance, in the accounts' order, each asked on its own; an account
    the provider refused or could not answer for has its error, told by `describe`."""
    balances = []
    for account in accounts:
        client = ProviderClient.for_account(account, timeout_s=timeout_s)
        try:
            balance = AccountBalance(account.name, account.flavor, account_credits(client))
        except PROVIDER_ERRORS as error:
            balance = AccountBalance(account.name, account.flavor, None, describe(error))
        finally:
            client.close()
        balances.append(balance)
    return balances
