"""Settings: one frozen object read once from an environment mapping at each entry point.

Names carry the `FILLPIPE_` prefix, except the standard AWS credential variables.
Secrets are held in `Secret`, whose repr and str never show the value; URLs with a
password are shown redacted.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

from pipeline.accounts import (
    DEFAULT_ACCOUNT,
    DEFAULT_SLOTS,
    PROVIDER_FLAVORS,
    Accounts,
    ProviderAccount,
    load_accounts,
)
from pipeline.errors import ConfigError
from pipeline.models import COMPOSITE_MODES, FEATHER_PX, CompositeOptions, QaLimits
from pipeline.secret import Secret

PREFIX = "FILLPIPE_"
DEFAULT_BUCKET = "fillpipe"
DEFAULT_REGION = "us-east-1"
DEFAULT_PROVIDER_SLOTS = DEFAULT_SLOTS
DEFAULT_RESULT_HOSTS = ("*.bfl.ai",)
DEFAULT_CALLBACK_TOKEN_MAX_AGE_S = 2 * 24 * 3600
DEFAULT_RESULT_MAX_BYTES = 64 * 1024 * 1024
MIN_SIGNING_KEY_CHARS = 32
NOTIFY_SECRET_PREFIX = "whsec_"  # noqa: S105 (the form's prefix, not a secret)
MIN_NOTIFY_KEY_BYTES = 24
MIN_DASHBOARD_TOKEN_CHARS = 24
# Credits per output megapixel used to estimate a job's cost before the provider
# states it (budgets, --dry-run); the emulator charges this for finetuned fills.
DEFAULT_PRICE_CREDITS_PER_MP = 8.0
# Where a worker's Prometheus exporter listens, when FILLPIPE_METRICS_PORT asks for one.
DEFAULT_METRICS_HOST = "127.0.0.1"
MAX_PORT = 65535

# What collect does when the provider no longer has a finished task's result.
LostResultPolicy = Literal["fail", "resubmit"]
LOST_RESULT_POLICIES: tuple[LostResultPolicy, ...] = ("fail", "resubmit")
T = TypeVar("T", bound=str)
_N = TypeVar("_N", int, float)
_TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
_FALSE_WORDS = frozenset({"false", "0", "no", "off"})


@dataclass(frozen=True)
class Deadlines:
    """How long a job may sit in a step before the reconcile sweep acts, and how often
    the sweep runs, in seconds.

    Each is read from `FILLPIPE_<NAME>` (e.g. `FILLPIPE_CALLBACK_LATE_S`).
    """

    # Awaiting a result with no callback: poll the task.
    callback_late_s: float = 60.0
    # Dispatched but the submit never began (its message was lost): put back in line.
    dispatch_late_s: float = 120.0
    # Submitting with no outcome recorded (the worker died mid-POST): treat as ambiguous.
    submit_late_s: float = 120.0
    # After an ambiguous submit, with no callback naming the task: make a new attempt.
    ambiguous_submit_s: float = 600.0
    # Collecting with no outcome (the worker died mid-download): collect again.
    collect_late_s: float = 300.0
    # How often the reconcile sweep looks for late jobs.
    reconcile_every_s: float = 10.0
    # A triggered job whose image landed before its mask: how long it waits for the mask.
    mask_wait_s: float = 60.0


def redact_url(url: str) -> str:
    """`url` with any password replaced by `***` (for reprs and log lines)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))


@dataclass(frozen=True)
class Settings:
    """Everything the pipeline reads from the environment. Build with `from_environ`."""

    redis_url: str
    accounts: Accounts
    signing_keys: tuple[Secret, ...]
    # The receiver's external base URL, which webhook URLs name; None: no callbacks.
    public_url: str | None = None
    # Whether the provider is asked to call back (else fillpipe polls every active task).
    callbacks: bool = True
    s3_endpoint_url: str | None = None
    s3_region: str = DEFAULT_REGION
    aws_access_key_id: str | None = None
    aws_secret_access_key: Secret | None = None
    bucket: str = DEFAULT_BUCKET
    result_hosts: tuple[str, ...] = DEFAULT_RESULT_HOSTS
    callback_token_max_age_s: int = DEFAULT_CALLBACK_TOKEN_MAX_AGE_S
    result_max_bytes: int = DEFAULT_RESULT_MAX_BYTES
    price_credits_per_mp: float = DEFAULT_PRICE_CREDITS_PER_MP
    # The receiver refuses callbacks without X-BFL-Signature (else verified when present).
    require_signature: bool = False
    deadlines: Deadlines = field(default_factory=Deadlines)
    on_lost_result: LostResultPolicy = "fail"
    # Trigger rules (a TOML file) for S3 events; the token the receiver's event route
    # requires (a Bearer token or an x-api-key header).
    rules_file: str | None = None
    events_token: Secret | None = None
    # A worker's Prometheus exporter: its port (None: no exporter) and bind address.
    metrics_port: int | None = None
    metrics_host: str = DEFAULT_METRICS_HOST
    # Signs outgoing notifications (`--notify`, a rule's `notify`): `whsec_<base64>`, as
    # Standard Webhooks has it; None: no notifications can be asked for.
    notify_secret: Secret | None = None
    # How outputs are made from the provider's results, unless a row or rule says
    # otherwise, and when a stored output is flagged.
    composite: CompositeOptions = field(default_factory=CompositeOptions)
    qa_limits: QaLimits = field(default_factory=QaLimits)
    # The dashboard's token (a Bearer token, or `?token=` once for a session cookie);
    # None: `fillpipe dashboard` refuses to start.
    dashboard_token: Secret | None = None
    extra: Mapping[str, str] = field(default_factory=dict, compare=False)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and validate every setting; raise `ConfigError` listing every problem."""
        env = _Env(os.environ if environ is None else environ)
        public_url = env.optional("PUBLIC_URL")
        settings = cls(
            redis_url=env.required("REDIS_URL", hint="run `fillpipe up` and source stack.env"),
            accounts=env.accounts(),
            signing_keys=env.signing_keys(),
            public_url=public_url.rstrip("/") if public_url else None,
            callbacks=env.callbacks(public_url),
            s3_endpoint_url=env.optional("S3_ENDPOINT_URL"),
            s3_region=env.optional("S3_REGION") or DEFAULT_REGION,
            aws_access_key_id=env.raw("AWS_ACCESS_KEY_ID"),
            aws_secret_access_key=_maybe_secret(env.raw("AWS_SECRET_ACCESS_KEY")),
            bucket=env.optional("BUCKET") or DEFAULT_BUCKET,
            result_hosts=env.csv("RESULT_HOSTS") or DEFAULT_RESULT_HOSTS,
            callback_token_max_age_s=env.integer(
                "CALLBACK_TOKEN_MAX_AGE_S", DEFAULT_CALLBACK_TOKEN_MAX_AGE_S, minimum=60
            ),
            result_max_bytes=env.integer(
                "RESULT_MAX_BYTES", DEFAULT_RESULT_MAX_BYTES, minimum=1024
            ),
            price_credits_per_mp=env.number(
                "PRICE_CREDITS_PER_MP", DEFAULT_PRICE_CREDITS_PER_MP, minimum=0.0
            ),
            require_signature=env.boolean("REQUIRE_SIGNATURE", default=False),
            deadlines=env.deadlines(),
            on_lost_result=env.choice("ON_LOST_RESULT", LOST_RESULT_POLICIES),
            rules_file=env.optional("RULES_FILE"),
            events_token=_maybe_secret(env.optional("EVENTS_TOKEN")),
            metrics_port=env.port("METRICS_PORT"),
            metrics_host=env.optional("METRICS_HOST") or DEFAULT_METRICS_HOST,
            notify_secret=env.notify_secret(),
            dashboard_token=env.dashboard_token(),
            composite=env.composite(),
            qa_limits=env.qa_limits(),
        )
        env.raise_problems()
        return settings

    def __repr__(self) -> str:
        shown = []
        for f in fields(self):
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            text = redact_url(value) if f.name.endswith("_url") and value else repr(value)
            shown.append(f"{f.name}={text}")
        return f"Settings({', '.join(shown)})"


def accounts_from_environ(environ: Mapping[str, str] | None = None) -> Accounts:
    """Only the provider accounts, as `Settings.from_environ` reads them, for commands
    that talk to the provider alone (`finetunes`, `credits`): they need no Redis, S3 or
    signing key. `ConfigError` lists every problem with the accounts' settings."""
    env = _Env(os.environ if environ is None else environ)
    accounts = env.accounts()
    env.raise_problems()
    return accounts


def _maybe_secret(value: str | None) -> Secret | None:
    return Secret(value) if value else None


def _shown(number: float) -> str:
    """A bound as messages show it: `60` for a whole number, `0.1` for a fraction."""
    return str(number) if isinstance(number, int) else f"{number:g}"


class _Env:
    """Reads `FILLPIPE_*` names from a mapping and collects every problem before raising."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        self._problems: list[str] = []

    def raw(self, name: str) -> str | None:
        value = self._environ.get(name, "").strip()
        return value or None

    def optional(self, name: str) -> str | None:
        return self.raw(PREFIX + name)

    def required(self, name: str, hint: str = "") -> str:
        value = self.optional(name)
        if value is None:
            suffix = f" ({hint})" if hint else ""
            self._problems.append(f"{PREFIX}{name} is not set{suffix}")
            return ""
        return value

    def csv(self, name: str) -> tuple[str, ...]:
        value = self.optional(name) or ""
        return tuple(item.strip() for item in value.split(",") if item.strip())

    def integer(self, name: str, default: int, *, minimum: int) -> int:
        return self._bounded(name, default, minimum, int, "a whole number")

    def number(self, name: str, default: float, *, minimum: float) -> float:
        return self._bounded(name, default, minimum, float, "a number")

    def _bounded(
        self, name: str, default: _N, minimum: _N, parse: Callable[[str], _N], noun: str
    ) -> _N:
        """The one parser of numeric settings: `parse`d, at least `minimum` (NaN is not)."""
        value = self.optional(name)
        if value is None:
            return default
        try:
            number = parse(value)
        except ValueError:
            self._problems.append(f"{PREFIX}{name} must be {noun}, got {value!r}")
            return default
        if not number >= minimum:
            self._problems.append(
                f"{PREFIX}{name} must be at least {_shown(minimum)}, "
                f"got {number if isinstance(number, int) else value}"
            )
        return number

    def port(self, name: str) -> int | None:
        """A TCP port (1-65535), or None when unset."""
        if self.optional(name) is None:
            return None
        port = self.integer(name, 0, minimum=1)
        if port > MAX_PORT:
            self._problems.append(f"{PREFIX}{name} must be at most {MAX_PORT}, got {port}")
        return port

    def boolean(self, name: str, *, default: bool) -> bool:
        """`true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`, any case)."""
        value = self.optional(name)
        if value is None:
            return default
        word = value.lower()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
        self._problems.append(f"{PREFIX}{name} must be true or false, got {value!r}")
        return default

    def deadlines(self) -> Deadlines:
        """Each `Deadlines` field from `FILLPIPE_<FIELD NAME IN CAPITALS>`."""
        defaults = Deadlines()
        return Deadlines(
            **{
                f.name: self.number(f.name.upper(), getattr(defaults, f.name), minimum=0.1)
                for f in fields(Deadlines)
            }
        )

    def choice(self, name: str, allowed: tuple[T, ...]) -> T:
        """One of `allowed` (any case); the first is the default."""
        value = (self.optional(name) or allowed[0]).lower()
        for option in allowed:
            if value == option:
                return option
        self._problems.append(f"{PREFIX}{name} must be one of {', '.join(allowed)}, got {value!r}")
        return allowed[0]

    def accounts(self) -> Accounts:
        """The accounts of `FILLPIPE_ACCOUNTS_FILE`, else the one account of the
        single-account settings (`PROVIDER_URL`, `PROVIDER_KEY`, `PROVIDER_FLAVOR`,
        `PROVIDER_SLOTS`), named `default`."""
        path = self.optional("ACCOUNTS_FILE")
        default_url = self.optional("PROVIDER_URL")
        if path is not None:
            try:
                return load_accounts(path, self._environ, default_url=default_url)
            except ConfigError as error:
                self._problems.append(str(error))
                return Accounts.single(ProviderAccount(DEFAULT_ACCOUNT, "", Secret("")))
        account = ProviderAccount(
            name=DEFAULT_ACCOUNT,
            base_url=self.required("PROVIDER_URL").rstrip("/"),
            key=Secret(self.required("PROVIDER_KEY")),
            flavor=self.choice("PROVIDER_FLAVOR", PROVIDER_FLAVORS),
            slots=self.integer("PROVIDER_SLOTS", DEFAULT_PROVIDER_SLOTS, minimum=1),
        )
        return Accounts.single(account)

    def callbacks(self, public_url: str | None) -> bool:
        """`FILLPIPE_CALLBACKS`: `on` needs a public URL; `off` polls; unset: on exactly
        when `FILLPIPE_PUBLIC_URL` is set."""
        mode = self.choice("CALLBACKS", ("auto", "on", "off"))
        if mode == "on" and public_url is None:
            self._problems.append(
                f"{PREFIX}CALLBACKS=on needs {PREFIX}PUBLIC_URL (the receiver's external "
                f"URL), or set {PREFIX}CALLBACKS=off to poll the provider instead"
            )
        return mode == "on" or (mode == "auto" and public_url is not None)

    def signing_keys(self) -> tuple[Secret, ...]:
        """Comma-separated, newest first: the first key signs, every key verifies."""
        keys = self.csv("SIGNING_KEY")
        if not keys:
            self._problems.append(
                f"{PREFIX}SIGNING_KEY is not set (a random string of at least "
                f"{MIN_SIGNING_KEY_CHARS} characters; several, comma-separated, newest first)"
            )
        for position, key in enumerate(keys, start=1):
            if len(key) < MIN_SIGNING_KEY_CHARS:
                self._problems.append(
                    f"{PREFIX}SIGNING_KEY entry {position} is shorter than "
                    f"{MIN_SIGNING_KEY_CHARS} characters"
                )
        return tuple(Secret(key) for key in keys)

    def composite(self) -> CompositeOptions:
        """`FILLPIPE_COMPOSITE` (paste|none), `FILLPIPE_FEATHER_PX`, `FILLPIPE_COLOR_MATCH`."""
        defaults = CompositeOptions()
        feather_px = self.integer("FEATHER_PX", defaults.feather_px, minimum=0)
        if feather_px not in FEATHER_PX:
            self._problems.append(f"{PREFIX}FEATHER_PX must be at most {FEATHER_PX.high:g}")
            feather_px = defaults.feather_px
        return CompositeOptions(
            mode=self.choice("COMPOSITE", COMPOSITE_MODES),
            feather_px=feather_px,
            color_match=self.boolean("COLOR_MATCH", default=defaults.color_match),
        )

    def qa_limits(self) -> QaLimits:
        """`FILLPIPE_QA_DRIFT_MAX` and `FILLPIPE_QA_SEAM_MAX`, in 0-255 units."""
        return QaLimits(
            drift_p99_max=self.number("QA_DRIFT_MAX", QaLimits.drift_p99_max, minimum=0.0),
            seam_max=self.number("QA_SEAM_MAX", QaLimits.seam_max, minimum=0.0),
        )

    def dashboard_token(self) -> Secret | None:
        """`FILLPIPE_DASHBOARD_TOKEN`: a long random string."""
        value = self.optional("DASHBOARD_TOKEN")
        if value and len(value) < MIN_DASHBOARD_TOKEN_CHARS:
            self._problems.append(
                f"{PREFIX}DASHBOARD_TOKEN must be at least {MIN_DASHBOARD_TOKEN_CHARS} "
                "characters (e.g. export FILLPIPE_DASHBOARD_TOKEN=$(openssl rand -hex 24))"
            )
        return _maybe_secret(value)

    def notify_secret(self) -> Secret | None:
        """`FILLPIPE_NOTIFY_SECRET`: `whsec_` and a base64 key, as Standard Webhooks has it."""
        value = self.optional("NOTIFY_SECRET")
        if value is None:
            return None
        key = value.removeprefix(NOTIFY_SECRET_PREFIX)
        try:
            decoded = base64.b64decode(key + "=" * (-len(key) % 4), validate=True)
        except (binascii.Error, ValueError):
            decoded = b""
        if not value.startswith(NOTIFY_SECRET_PREFIX) or len(decoded) < MIN_NOTIFY_KEY_BYTES:
            self._problems.append(
                f"{PREFIX}NOTIFY_SECRET must be {NOTIFY_SECRET_PREFIX} followed by a base64 key "
                f"of at least {MIN_NOTIFY_KEY_BYTES} bytes (make one: echo "
                f"{NOTIFY_SECRET_PREFIX}$(openssl rand -base64 32))"
            )
            return None
        return Secret(value)

    def raise_problems(self) -> None:
        if self._problems:
            listing = "\n  - ".join(self._problems)
            raise ConfigError(f"invalid settings:\n  - {listing}")
