"""What the commands that talk to the provider alone (`finetunes`, `credits`) share: the
accounts they act on, a client per account, and their errors as messages and exit codes.

These commands read only the provider accounts from the environment
(`accounts_from_environ`), so they work without Redis or S3. Exit codes: 2 for bad input
or settings (an unknown account names the configured ones), 1 when the provider refused
or could not be reached, or no longer offers the endpoint.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

from fillpipe.output import exit_on_known_errors, say
from pipeline.accounts import Accounts, ProviderAccount
from pipeline.balances import PROVIDER_ERRORS
from pipeline.errors import EndpointWithdrawn
from pipeline.provider import ProviderClient
from pipeline.settings import accounts_from_environ

EXIT_FAILURE = 1
# What to do instead when the provider no longer offers an endpoint, by its purpose.
_WITHDRAWN_HINTS = {
    "finetune creation": "create the finetune in the provider's dashboard and use its id",
    "the credits balance": "see the balance in the provider's dashboard",
}
_WITHDRAWN_HINT = "manage finetunes in the provider's dashboard"


def load_accounts(environ: Mapping[str, str]) -> Accounts:
    return accounts_from_environ(environ)


def chosen_accounts(accounts: Accounts, name: str | None) -> list[ProviderAccount]:
    """The account called `name` (`UnknownAccount` names the configured ones), or every
    account when no name is given."""
    return [accounts.get(name)] if name is not None else list(accounts)


@contextmanager
def client_for(account: ProviderAccount) -> Iterator[ProviderClient]:
    client = ProviderClient.for_account(account)
    try:
        yield client
    finally:
        client.close()


def describe(error: Exception) -> str:
    """A provider error as one line for the person at the terminal, with what to do
    instead when the endpoint is withdrawn."""
    if isinstance(error, EndpointWithdrawn):
        return f"{error}; {_WITHDRAWN_HINTS.get(error.what, _WITHDRAWN_HINT)}"
    return str(error)


def run_provider_command(action: Callable[[], object]) -> None:
    """Run `action`: bad input or settings exit 2 (`exit_on_known_errors`); a provider
    error is one message on stderr and exit 1."""

    def guarded() -> None:
        try:
            action()
        except PROVIDER_ERRORS as error:
            say(f"fillpipe: {describe(error)}")
            sys.exit(EXIT_FAILURE)

    exit_on_known_errors(guarded)
