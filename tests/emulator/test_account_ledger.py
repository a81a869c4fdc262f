from decimal import Decimal

import pytest

from emulator.account_limits import AccountLimits
from emulator.accounts import Account, Accounts
from emulator.config import EmulatorConfig
from emulator.errors import PaymentRequired, TooManyRequests


def test_opening_a_task_charges_and_counts() -> None:
    account = Account(credits=Decimal("1.00"), max_active_tasks=2)

    account.open_task(Decimal("0.40"))
    account.open_task(Decimal("0.60"))

    assert account.credits == 0
    assert account.stats() == {
        "max_active_tasks": 2,
        "active_tasks": 2,
        "active_tasks_high_water": 2,
        "submitted_tasks": 2,
        "charged_credits": 1.0,
        "credits": 0.0,
    }


def test_the_limit_is_checked_before_the_credits() -> None:
    account = Account(credits=Decimal(0), max_active_tasks=1)
    account.open_task(Decimal(0))

    with pytest.raises(TooManyRequests):
        account.open_task(Decimal(1))
    account.max_active_tasks = 2
    with pytest.raises(PaymentRequired):
        account.open_task(Decimal(1))


def test_a_failed_task_is_refunded_and_the_high_water_mark_stays() -> None:
    account = Account(credits=Decimal(1), max_active_tasks=5)
    account.open_task(Decimal("0.25"))

    account.close_task(refund=Decimal("0.25"))

    assert account.credits == 1
    assert (account.active_tasks, account.active_tasks_high_water) == (0, 1)
    assert account.charged_credits == 0


def test_accounts_open_with_the_initial_credits() -> None:
    accounts = Accounts(EmulatorConfig(initial_credits=0.1, max_active_tasks=4))

    assert accounts["key-a"].credits == Decimal("0.1")
    assert accounts["key-a"].max_active_tasks == 4
    assert accounts["key-a"] is accounts["key-a"]
    assert accounts.stats().keys() == {"key-a"}


def test_a_configured_account_opens_with_its_own_limits() -> None:
    config = EmulatorConfig(
        initial_credits=10,
        max_active_tasks=24,
        accounts={"key-a": AccountLimits(slots=3, credits=0.5), "key-b": AccountLimits(slots=5)},
    )
    accounts = Accounts(config)

    assert (accounts["key-a"].max_active_tasks, accounts["key-a"].credits) == (3, Decimal("0.5"))
    assert (accounts["key-b"].max_active_tasks, accounts["key-b"].credits) == (5, Decimal(10))
    assert (accounts["key-c"].max_active_tasks, accounts["key-c"].credits) == (24, Decimal(10))


def test_setting_credits_replaces_the_balance_and_keeps_the_charges() -> None:
    account = Account(credits=Decimal(1), max_active_tasks=1)
    account.open_task(Decimal("0.25"))

    account.set_credits(Decimal("7.5"))

    assert (account.credits, account.charged_credits) == (Decimal("7.5"), Decimal("0.25"))
