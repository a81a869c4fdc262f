from decimal import Decimal

import pytest

from emulator.accounts import Account, Accounts
from emulator.errors import PaymentRequired, TooManyRequests


def test_opening_a_task_charges_and_counts() -> None:
    account = Account(credits=Decimal("1.00"))

    account.open_task(Decimal("0.40"), max_active_tasks=2)
    account.open_task(Decimal("0.60"), max_active_tasks=2)

    assert account.credits == 0
    assert account.stats() == {
        "active_tasks": 2,
        "active_tasks_high_water": 2,
        "submitted_tasks": 2,
        "charged_credits": 1.0,
        "credits": 0.0,
    }


def test_the_limit_is_checked_before_the_credits() -> None:
    account = Account(credits=Decimal(0))
    account.open_task(Decimal(0), max_active_tasks=1)

    with pytest.raises(TooManyRequests):
        account.open_task(Decimal(1), max_active_tasks=1)
    with pytest.raises(PaymentRequired):
        account.open_task(Decimal(1), max_active_tasks=2)


def test_a_failed_task_is_refunded_and_the_high_water_mark_stays() -> None:
    account = Account(credits=Decimal(1))
    account.open_task(Decimal("0.25"), max_active_tasks=5)

    account.close_task(refund=Decimal("0.25"))

    assert account.credits == 1
    assert (account.active_tasks, account.active_tasks_high_water) == (0, 1)
    assert account.charged_credits == 0


def test_accounts_open_with_the_initial_credits() -> None:
    accounts = Accounts(initial_credits=0.1)

    assert accounts["key-a"].credits == Decimal("0.1")
    assert accounts["key-a"] is accounts["key-a"]
    assert accounts.stats().keys() == {"key-a"}
