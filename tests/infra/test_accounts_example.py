"""infra/accounts.example.toml loads as documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.accounts import load_accounts

pytestmark = pytest.mark.timeout(10)

EXAMPLE = Path(__file__).resolve().parents[2] / "infra" / "accounts.example.toml"


def test_the_example_accounts_file_loads():
    environ = {"BFL_KEY_BRAND_A": "a-key", "COMET_KEY_BRAND_B": "b-key"}

    accounts = load_accounts(str(EXAMPLE), environ, default_url=None)

    assert accounts.names == ("brand-a", "brand-b")
    assert accounts.default_name == "brand-b"
    assert accounts.get("brand-a").daily_budget_credits == 20_000
    assert [account.flavor for account in accounts] == ["bfl", "cometapi"]
