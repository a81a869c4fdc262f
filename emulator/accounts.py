"""Per-key accounts: credits and the active-task limit, with counters for /admin/stats."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from emulator.errors import PaymentRequired, TooManyRequests

# Sent as Retry-After with a 429: a task slot usually frees within a second or two.
RETRY_AFTER_S = 1


@dataclass
class Account:
    """One API key's balance and task counters."""

    credits: Decimal
    active_tasks: int = 0
    active_tasks_high_water: int = 0
    submitted_tasks: int = 0
    charged_credits: Decimal = Decimal(0)

    def open_task(self, cost: Decimal, *, max_active_tasks: int) -> None:
        """Take an active-task slot and charge `cost`; 429 or 402 when that is not possible."""
        if self.active_tasks >= max_active_tasks:
            raise TooManyRequests(
                f"Too many active tasks: at most {max_active_tasks} may run at once",
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

    def stats(self) -> dict[str, Any]:
        return {
            "active_tasks": self.active_tasks,
            "active_tasks_high_water": self.active_tasks_high_water,
            "submitted_tasks": self.submitted_tasks,
            "charged_credits": float(self.charged_credits),
            "credits": float(self.credits),
        }


class Accounts:
    """Every key's account, opened with the initial credits on its first request."""

    def __init__(self, initial_credits: float) -> None:
        self._initial_credits = Decimal(str(initial_credits))
        self._accounts: dict[str, Account] = {}

    def __getitem__(self, key: str) -> Account:
        if key not in self._accounts:
            self._accounts[key] = Account(credits=self._initial_credits)
        return self._accounts[key]

    def stats(self) -> dict[str, dict[str, Any]]:
        """Counters per key, for the admin API."""
        return {key: account.stats() for key, account in self._accounts.items()}
