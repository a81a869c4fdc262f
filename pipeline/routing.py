"""Which provider account a job runs on.

In order: the account its manifest row or trigger rule names; else the account that owns
its finetune (each account's `my_finetunes`, asked once and then cached for
`FINETUNES_CACHE_S`); else the default account. With one account configured, every job
runs on it and nothing is asked.

A finetune the provider shares across organisations (`org-id/name`) is listed by no
account and goes to the default one. When an account cannot be asked (unreachable, its
key refused) and no other account owns the finetune, the job is not guessed onto the
default account: `ProviderUnavailable` says which account could not be asked, so the
caller can retry or the user can name the account.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from pipeline.accounts import Accounts
from pipeline.errors import FillpipeError, ProviderUnavailable
from pipeline.finetunes import my_finetunes
from pipeline.provider import Providers
from pipeline.settings import Settings

log = logging.getLogger(__name__)

# How long an account's list of finetunes is trusted. A finetune created since is found
# once the list is read again; naming the account in the row needs no wait.
FINETUNES_CACHE_S = 600.0


@dataclass(frozen=True)
class _Listing:
    finetune_ids: frozenset[str]
    read_at: float


class AccountRouter:
    """Decides each job's account. Thread-safe; one per process."""

    def __init__(
        self,
        accounts: Accounts,
        providers: Providers,
        *,
        clock: Callable[[], float] = time.monotonic,
        cache_s: float = FINETUNES_CACHE_S,
        owns_providers: bool = False,
    ) -> None:
        self._accounts = accounts
        self._providers = providers
        self._clock = clock
        self._cache_s = cache_s
        self._listings: dict[str, _Listing] = {}
        self._lock = threading.Lock()
        self._owns_providers = owns_providers

    @classmethod
    def from_settings(cls, settings: Settings) -> AccountRouter:
        """A router with provider clients of its own (close it when done)."""
        return cls(settings.accounts, Providers(settings.accounts), owns_providers=True)

    def __repr__(self) -> str:
        return f"AccountRouter({', '.join(self._accounts.names)})"

    def close(self) -> None:
        """Close the provider clients, if this router made them."""
        if self._owns_providers:
            self._providers.close()

    def account_for(self, named: str | None, finetune_id: str) -> str:
        """The account of a job that names `named` (or None) and uses `finetune_id`.
        Raises `UnknownAccount` for a name that is not configured."""
        if named is not None:
            return self._accounts.get(named).name
        if len(self._accounts) == 1:
            return self._accounts.default_name
        owners, unasked = self._owners(finetune_id)
        if owners:
            default = self._accounts.default_name
            return default if default in owners else owners[0]
        if unasked:
            raise ProviderUnavailable(
                f"cannot tell which account owns finetune {finetune_id!r}: "
                f"{'; '.join(unasked)}; name the account in the row or rule "
                f'("account": "NAME") or try again'
            )
        return self._accounts.default_name

    def _owners(self, finetune_id: str) -> tuple[list[str], list[str]]:
        """The accounts that list the finetune, and why any account could not be asked."""
        owners, unasked = [], []
        for name in self._accounts.names:
            try:
                listed = self._finetunes(name)
            except FillpipeError as error:
                unasked.append(f"account {name}: {error}")
                continue
            if finetune_id in listed:
                owners.append(name)
        return owners, unasked

    def _finetunes(self, account: str) -> frozenset[str]:
        with self._lock:
            cached = self._listings.get(account)
        if cached is not None and self._clock() - cached.read_at < self._cache_s:
            return cached.finetune_ids
        listed = frozenset(my_finetunes(self._providers[account]))
        log.info("account %s lists %d finetunes", account, len(listed))
        with self._lock:
            self._listings[account] = _Listing(listed, self._clock())
        return listed
