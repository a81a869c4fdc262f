"""Provider accounts from `FILLPIPE_ACCOUNTS_FILE`, and which account a job goes to."""

from __future__ import annotations

import httpx
import pytest

from pipeline.errors import ConfigError, ProviderUnavailable, UnknownAccount
from pipeline.provider import Providers
from pipeline.routing import AccountRouter
from pipeline.settings import Settings

pytestmark = pytest.mark.timeout(10)

# The example, as a user writes it.
EXAMPLE = """
[accounts.brand-a]
flavor = "bfl"
base_url = "https://api.us1.bfl.ai"
key_env = "BFL_KEY_BRAND_A"
slots = 24

[accounts.brand-b]
flavor = "cometapi"
base_url = "https://cometapi.example"
key_env = "COMET_KEY_BRAND_B"
slots = 8
default = true
"""
BASE = {
    "FILLPIPE_REDIS_URL": "redis://127.0.0.1:6379/0",
    "FILLPIPE_SIGNING_KEY": "s" * 40,
    "BFL_KEY_BRAND_A": "bfl-secret-of-brand-a",
    "COMET_KEY_BRAND_B": "comet-secret-of-brand-b",
}


def settings_with(tmp_path, text: str, **extra: str) -> Settings:
    path = tmp_path / "accounts.toml"
    path.write_text(text)
    return Settings.from_environ({**BASE, "FILLPIPE_ACCOUNTS_FILE": str(path), **extra})


def problems_of(tmp_path, text: str, **extra: str) -> str:
    with pytest.raises(ConfigError) as caught:
        settings_with(tmp_path, text, **extra)
    return str(caught.value)


def test_the_example_file_works_as_written(tmp_path):
    accounts = settings_with(tmp_path, EXAMPLE).accounts

    assert accounts.names == ("brand-a", "brand-b")
    assert accounts.default_name == "brand-b"
    a, b = accounts.get("brand-a"), accounts.get("brand-b")
    assert (a.flavor, a.base_url, a.slots) == ("bfl", "https://api.us1.bfl.ai", 24)
    assert (b.flavor, b.base_url, b.slots) == ("cometapi", "https://cometapi.example", 8)
    assert a.key.reveal() == "bfl-secret-of-brand-a"
    assert accounts.total_slots == 32
    shown = repr(accounts) + repr(settings_with(tmp_path, EXAMPLE))
    assert "secret-of-brand" not in shown


def test_without_the_file_the_single_account_settings_make_one_default_account():
    settings = Settings.from_environ(
        {
            **BASE,
            "FILLPIPE_PROVIDER_URL": "https://api.us1.bfl.ai",
            "FILLPIPE_PROVIDER_KEY": "the-key",
            "FILLPIPE_PROVIDER_SLOTS": "6",
        }
    )
    assert settings.accounts.names == ("default",)
    assert settings.accounts.default.slots == 6
    assert settings.callbacks is False  # no public URL: fillpipe polls


def test_an_account_without_base_url_uses_the_provider_url_and_key_file(tmp_path):
    (tmp_path / "brand.key").write_text("from-a-file\n")
    text = '[accounts.solo]\nkey_file = "brand.key"\ndaily_budget_usd = 50\n'
    accounts = settings_with(tmp_path, text, FILLPIPE_PROVIDER_URL="http://127.0.0.1:9/").accounts

    solo = accounts.default
    assert (solo.name, solo.base_url, solo.flavor, solo.slots) == (
        "solo",
        "http://127.0.0.1:9",
        "bfl",
        24,
    )
    assert solo.key.reveal() == "from-a-file"
    assert solo.daily_budget_credits == 5000.0


def test_every_problem_is_named_with_its_account_and_field(tmp_path):
    text = """
[accounts.one]
flavour = "bfl"
key_env = "NOT_SET_ANYWHERE"
slots = 0
default = true

[accounts.two]
flavor = "acme"
key_env = "BFL_KEY_BRAND_A"
key_file = "x"
base_url = "ftp://nope"
default = true

[accounts."bad name!"]
key_env = "BFL_KEY_BRAND_A"
base_url = "https://api.bfl.ai"
"""
    message = problems_of(tmp_path, text)
    for expected in (
        "[accounts.one] unknown field 'flavour'",
        "[accounts.one] key_env: the environment variable NOT_SET_ANYWHERE is not set",
        "[accounts.one] slots must be a whole number above 0, got 0",
        "[accounts.two] flavor must be one of bfl, cometapi, got 'acme'",
        "[accounts.two] name its API key with exactly one of key_env or key_file",
        "[accounts.two] base_url must be an http(s) URL",
        "accounts one, two all say default = true: keep one",
        "[accounts.bad name!] the name may hold letters, digits",
    ):
        assert expected in message
    assert "secret-of-brand" not in message


def test_an_unreadable_or_empty_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read it"):
        Settings.from_environ({**BASE, "FILLPIPE_ACCOUNTS_FILE": str(tmp_path / "missing.toml")})
    assert "is not valid TOML" in problems_of(tmp_path, "[accounts.a\n")
    assert "no [accounts.NAME] table" in problems_of(tmp_path, "")
    assert "only [accounts.NAME] tables" in problems_of(tmp_path, "[provider]\nurl = 1\n")


def test_callbacks_on_without_a_public_url_is_refused(tmp_path):
    message = problems_of(tmp_path, EXAMPLE, FILLPIPE_CALLBACKS="on")
    assert "FILLPIPE_CALLBACKS=on needs FILLPIPE_PUBLIC_URL" in message


class Listings:
    """A provider whose accounts (by key) list finetunes; counts the listings asked."""

    def __init__(self, owned: dict[str, list[str]], down: set[str] | None = None) -> None:
        self.owned, self.down, self.asked = owned, down or set(), 0

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.answer)

    def answer(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path.endswith("/my_finetunes")
        self.asked += 1
        key = request.headers.get("x-key") or request.headers["authorization"].split()[-1]
        if key in self.down:
            return httpx.Response(503, json={"detail": "down"})
        return httpx.Response(200, json={"finetunes": self.owned.get(key, [])})


def router_for(tmp_path, listings: Listings) -> AccountRouter:
    accounts = settings_with(tmp_path, EXAMPLE).accounts
    return AccountRouter(accounts, Providers(accounts, transport=listings.transport()))


def test_a_job_goes_to_the_account_it_names_else_its_finetunes_owner_else_the_default(tmp_path):
    listings = Listings({"bfl-secret-of-brand-a": ["ft-a"], "comet-secret-of-brand-b": ["ft-b"]})
    router = router_for(tmp_path, listings)

    assert router.account_for("brand-a", "ft-b") == "brand-a"
    assert router.account_for(None, "ft-a") == "brand-a"
    assert router.account_for(None, "ft-b") == "brand-b"
    assert router.account_for(None, "org/shared") == "brand-b"  # listed by none: default
    assert listings.asked == 2  # each account's list asked once, then cached
    with pytest.raises(UnknownAccount, match="configured: brand-a, brand-b"):
        router.account_for("brand-z", "ft-a")


def test_a_finetune_no_reachable_account_lists_is_not_guessed(tmp_path):
    listings = Listings({"comet-secret-of-brand-b": ["ft-b"]}, down={"bfl-secret-of-brand-a"})
    router = router_for(tmp_path, listings)

    assert router.account_for(None, "ft-b") == "brand-b"  # found despite brand-a being down
    with pytest.raises(ProviderUnavailable, match="account brand-a"):
        router.account_for(None, "ft-a")
