"""Provider accounts: each its own API key, slot pool, credits and finetunes.

An agency runs each brand on its own account (a BFL account per region or client, a
CometAPI key), each with its own limit of active tasks. fillpipe keeps one slot pool per
account in the ledger, and a job goes to one account (`pipeline.routing` decides which).

Accounts come from one TOML file (`FILLPIPE_ACCOUNTS_FILE`):

    [accounts.brand-a]
    flavor = "bfl"                      # or "cometapi"; default "bfl"
    base_url = "https://api.us1.bfl.ai" # default FILLPIPE_PROVIDER_URL
    key_env = "BFL_KEY_BRAND_A"         # or key_file = "/run/secrets/brand-a"
    slots = 24                          # active tasks at once; default 24
    daily_budget_usd = 50               # optional: dispatch stops at this spend a day
    default = true                      # jobs that name no account (else the first)

Without the file, the single-account settings (`FILLPIPE_PROVIDER_URL`, `_KEY`,
`_FLAVOR`, `_SLOTS`) make one account named `default`.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pipeline.errors import ConfigError, UnknownAccount
from pipeline.secret import Secret

ProviderFlavor = Literal["bfl", "cometapi"]
PROVIDER_FLAVORS: tuple[ProviderFlavor, ...] = ("bfl", "cometapi")
DEFAULT_ACCOUNT = "default"
DEFAULT_SLOTS = 24
# Account names appear in ledger keys, S3 tags and command lines.
ACCOUNT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}")
_FIELDS = frozenset(
    {"flavor", "base_url", "key_env", "key_file", "slots", "daily_budget_usd", "default"}
)


@dataclass(frozen=True)
class ProviderAccount:
    """One provider account. Its key is a `Secret`, never shown."""

    name: str
    base_url: str
    key: Secret
    flavor: ProviderFlavor = "bfl"
    slots: int = DEFAULT_SLOTS
    # Credits (1 credit = $0.01) a UTC day's recorded spend may reach; None: no cap.
    daily_budget_credits: float | None = None


@dataclass(frozen=True)
class Accounts:
    """Every configured account, in file order, and the one jobs go to by default."""

    by_name: Mapping[str, ProviderAccount]
    default_name: str

    @classmethod
    def single(cls, account: ProviderAccount) -> Accounts:
        return cls({account.name: account}, account.name)

    def __iter__(self) -> Iterator[ProviderAccount]:
        return iter(self.by_name.values())

    def __len__(self) -> int:
        return len(self.by_name)

    @property
    def default(self) -> ProviderAccount:
        return self.by_name[self.default_name]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.by_name)

    def get(self, name: str) -> ProviderAccount:
        """The account called `name`; `UnknownAccount` lists the configured ones."""
        try:
            return self.by_name[name]
        except KeyError:
            raise UnknownAccount(
                f"no provider account named {name!r} (configured: {', '.join(self.names)})"
            ) from None

    @property
    def total_slots(self) -> int:
        return sum(account.slots for account in self)


def load_accounts(path: str, environ: Mapping[str, str], *, default_url: str | None) -> Accounts:
    """The accounts of the TOML file at `path`; `ConfigError` lists every problem, each
    with the account and field it is in and how to fix it."""
    table = _read_table(path)
    problems: list[str] = []
    accounts: dict[str, ProviderAccount] = {}
    defaults: list[str] = []
    for name, fields_ in table.items():
        reader = _AccountFields(name, fields_, problems)
        account = reader.account(environ, default_url, Path(path).parent)
        if reader.is_default():
            defaults.append(name)
        if account is not None:
            accounts[name] = account
    if not table:
        problems.append("no [accounts.NAME] table: name at least one account")
    if len(defaults) > 1:
        problems.append(f"accounts {', '.join(defaults)} all say default = true: keep one")
    if problems:
        listing = "\n    - ".join(problems)
        raise ConfigError(f"invalid accounts file {path}:\n    - {listing}")
    return Accounts(accounts, defaults[0] if defaults else next(iter(accounts)))


def _read_table(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as file:
            document = tomllib.load(file)
    except OSError as error:
        raise ConfigError(
            f"FILLPIPE_ACCOUNTS_FILE {path}: cannot read it ({error.strerror})"
        ) from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"accounts file {path} is not valid TOML: {error}") from None
    extra = sorted(set(document) - {"accounts"})
    accounts = document.get("accounts", {})
    if extra or not isinstance(accounts, dict):
        raise ConfigError(
            f"accounts file {path}: only [accounts.NAME] tables belong there"
            + (f" (found {', '.join(extra)})" if extra else "")
        )
    return accounts


class _AccountFields:
    """Reads one `[accounts.NAME]` table, adding each problem to `problems`."""

    def __init__(self, name: str, table: Any, problems: list[str]) -> None:
        self._name = name
        self._table: dict[str, Any] = table if isinstance(table, dict) else {}
        self._problems = problems
        if not isinstance(table, dict):
            self._problem("must be a table of fields")
        if not ACCOUNT_NAME.fullmatch(name):
            self._problem("the name may hold letters, digits, '-' and '_' (at most 63)")
        for unknown in sorted(set(self._table) - _FIELDS):
            self._problem(f"unknown field {unknown!r} (known: {', '.join(sorted(_FIELDS))})")

    def _problem(self, text: str) -> None:
        self._problems.append(f"[accounts.{self._name}] {text}")

    def account(
        self, environ: Mapping[str, str], default_url: str | None, base_dir: Path
    ) -> ProviderAccount | None:
        before = len(self._problems)
        flavor = self._flavor()
        base_url = self._base_url(default_url)
        key = self._key(environ, base_dir)
        slots = self._number("slots", DEFAULT_SLOTS, whole=True)
        budget_usd = self._number("daily_budget_usd", None, whole=False)
        if len(self._problems) > before:
            return None
        return ProviderAccount(
            name=self._name,
            base_url=base_url,
            key=key,
            flavor=flavor,
            slots=int(slots or DEFAULT_SLOTS),
            daily_budget_credits=None if budget_usd is None else budget_usd * 100,
        )

    def is_default(self) -> bool:
        value = self._table.get("default", False)
        if not isinstance(value, bool):
            self._problem("default must be true or false")
        return value is True

    def _flavor(self) -> ProviderFlavor:
        value = self._table.get("flavor", "bfl")
        for flavor in PROVIDER_FLAVORS:
            if value == flavor:
                return flavor
        self._problem(f"flavor must be one of {', '.join(PROVIDER_FLAVORS)}, got {value!r}")
        return "bfl"

    def _base_url(self, default_url: str | None) -> str:
        value = self._table.get("base_url", default_url)
        if not isinstance(value, str) or not value.startswith(("http://", "https://")):
            self._problem("base_url must be an http(s) URL (or set FILLPIPE_PROVIDER_URL)")
            return ""
        return value.rstrip("/")

    def _key(self, environ: Mapping[str, str], base_dir: Path) -> Secret:
        key_env, key_file = self._table.get("key_env"), self._table.get("key_file")
        if (key_env is None) == (key_file is None):
            self._problem("name its API key with exactly one of key_env or key_file")
            return Secret("")
        if key_env is not None:
            value = environ.get(str(key_env), "").strip()
            if not value:
                self._problem(f"key_env: the environment variable {key_env} is not set")
            return Secret(value)
        return self._key_from_file(base_dir / str(key_file))

    def _key_from_file(self, path: Path) -> Secret:
        try:
            value = path.read_text().strip()
        except OSError as error:
            self._problem(f"key_file {path}: cannot read it ({error.strerror})")
            return Secret("")
        if not value:
            self._problem(f"key_file {path} is empty")
        return Secret(value)

    def _number(self, name: str, default: float | None, *, whole: bool) -> float | None:
        value = self._table.get(name, default)
        if value is None:
            return None
        numeric = isinstance(value, int) if whole else isinstance(value, int | float)
        if isinstance(value, bool) or not numeric or not value > 0:
            noun = "a whole number" if whole else "a number"
            self._problem(f"{name} must be {noun} above 0, got {value!r}")
            return default
        return float(value)
