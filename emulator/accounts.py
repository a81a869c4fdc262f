"""Per-key accounts: credits and the active-task limit, with counters for /admin/stats.

Each key's limits are its own (`EmulatorConfig.limits`): a key configured in
`accounts` gets its slots and starting credits, any other key the defaults.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from emulator.config import EmulatorConfig
from emulator.errors import PaymentRequired, TooManyRequests

# Sent as Retry-After with a 429: a task slot usually frees within a second or two.
RETRY_AFTER_S = 1


@dataclass
class Account:
    """One API key's balance, active-task limit and task counters."""

    credits: Decimal
    max_active_tasks: int
    active_tasks: int = 0
    active_tasks_high_water: int = 0
    submitted_tasks: int = 0
    charged_credits: Decimal = Decimal(0)

    def open_task(self, cost: Decimal) -> None:
        """Take an active-task slot and charge `cost`; 429 or 402 when that is not possible."""
        if self.active_tasks >= self.max_active_tasks:
            raise TooManyRequests(
                f"Too many active tasks: at most {self.max_active_tasks} may run at once",
                retry_after_s=RETRY_AFTER_S,
            )
        if cost > self.credits:
            raise PaymentRequired(f"Insufficient credits: {cost} needed, {self.credits} left")
        self.credits -= cost
        self.charged_credits += cost
        self.submitted_tasks += 1
        self.active_tasks += 1
        self.active_tasks_high_water = max(self.active_tasks_high_water, self.active_tasks)

    def close_task(self, *, refund: Decimal = Decimal(0)) -> None:
        """Free the task's slot; a failed task gets its `refund` back."""
        self.active_tasks -= 1
        self.credits += refund
        self.charged_credits -= refund

    def set_credits(self, credits: Decimal) -> None:
        """Set the balance outright (the admin API drains or tops up an account)."""
        self.credits = credits

    def stats(self) -> dict[str, Any]:
        return {
            "max_active_tasks": self.max_active_tasks,
            "active_tasks": self.active_tasks,
            "active_tasks_high_water": self.active_tasks_high_water,
            "submitted_tasks": self.submitted_tasks,
            "charged_credits": float(self.charged_credits),
            "credits": float(self.credits),
        }


class Accounts:
    """Every key's account, opened with the key's limits on its first use."""

    def __init__(self, config: EmulatorConfig) -> None:
        self._config = config
        self._accounts: dict[str, Account] = {}

    def __getitem__(self, key: str) -> Account:
        if key not in self._accounts:
            slots, credits = self._config.limits(key)
            self._accounts[key] = Account(credits=Decimal(str(credits)), max_active_tasks=slots)
        return self._accounts[key]

    def stats(self) -> dict[str, dict[str, Any]]:
        """Counters per key, for the admin API."""
        return {key: account.stats() for key, account in self._accounts.items()}
