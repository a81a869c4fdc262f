"""Logging of the long-running services: one line per record, on stderr.

`FILLPIPE_LOG_FORMAT` picks the format: `json` (one JSON object per line, for log
collectors) or `text` (for a person at a terminal); unset, `text` when stderr is a
terminal, else `json`. Both show the job a line belongs to (`pipeline.logcontext`).

Every record passes `SecretRedactor` on its way out: the configured secrets (provider
keys, signing keys, the events token, the AWS secret key, the Redis password) and
callback tokens in URL paths are replaced in its message and exception text.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterable, Mapping
from typing import Any, TextIO
from urllib.parse import unquote, urlsplit

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from pipeline.errors import ConfigError
from pipeline.logcontext import FIELDS, JobContextFilter
from pipeline.settings import Settings

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_FORMAT_ENV = "FILLPIPE_LOG_FORMAT"
LOG_FORMATS = ("json", "text")
# httpx logs every request URL at INFO, and result URLs carry signatures; boto3 and
# urllib3 log every request.
QUIET_LOGGERS = ("httpx", "httpcore", "botocore", "boto3", "urllib3")
REDACTED = "***"
# Shorter values are not searched for: replacing them everywhere would garble lines.
MIN_SECRET_CHARS = 4
# The token in a callback URL's path (`/v1/callbacks/bfl/{token}`) names and authorises
# one job's callback.
CALLBACK_PATH = re.compile(r"/v1/callbacks/bfl/[^\s/?#\"']+")
CALLBACK_PATH_SHOWN = "/v1/callbacks/bfl/<token>"
# JSON field names for the record attributes shown; extras (the job's ids, Celery's
# `data`) keep their own names. uvicorn's `color_message` repeats the message.
JSON_FIELDS = {"levelname": "level", "name": "logger", "message": "message"}
JSON_SKIPPED = (*RESERVED_ATTRS, "color_message")


def configure_logging(
    level: str = "INFO",
    *,
    settings: Settings | None = None,
    environ: Mapping[str, str] | None = None,
    stream: TextIO | None = None,
) -> None:
    """Send every record to one handler on the root logger, in the format
    `FILLPIPE_LOG_FORMAT` of `environ` (default: the process's) asks for, with the job
    context and the secrets of `settings` redacted. Calling it again replaces the
    handler (e.g. once the settings are known)."""
    stream = sys.stderr if stream is None else stream
    chosen = log_format(os.environ if environ is None else environ, stream)
    handler = _FillpipeHandler(stream)
    handler.setFormatter(json_formatter() if chosen == "json" else TextFormatter(LOG_FORMAT))
    handler.addFilter(JobContextFilter())
    handler.addFilter(SecretRedactor(secret_values(settings) if settings else ()))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _FillpipeHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.captureWarnings(True)  # Python warnings as records, in the same format
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def log_format(environ: Mapping[str, str], stream: TextIO) -> str:
    """`json` or `text`: as `FILLPIPE_LOG_FORMAT` says, else by whether `stream` is a
    terminal. Raises `ConfigError` for another value."""
    chosen = environ.get(LOG_FORMAT_ENV, "").strip().lower()
    if not chosen:
        return "text" if _isatty(stream) else "json"
    if chosen not in LOG_FORMATS:
        raise ConfigError(
            f"{LOG_FORMAT_ENV}={chosen!r}: choose one of {', '.join(LOG_FORMATS)} "
            "(unset: text on a terminal, else json)"
        )
    return chosen


def json_formatter() -> JsonFormatter:
    """One JSON object per record: time (ISO 8601, UTC), level, logger, message, the job's
    ids when set, and `exception` (the traceback text) when there is one."""
    return _TimeFirstJsonFormatter(
        list(JSON_FIELDS),
        rename_fields={**JSON_FIELDS, "exc_info": "exception"},
        reserved_attrs=JSON_SKIPPED,
        timestamp="time",
        json_ensure_ascii=False,
    )


class _TimeFirstJsonFormatter(JsonFormatter):
    """Puts `time` first, where a reader's eye (and `sort`) looks for it."""

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        return {"time": log_data.pop("time", None), **log_data}


class TextFormatter(logging.Formatter):
    """`LOG_FORMAT`, then the job's ids when set: `... [batch=B job=J attempt=1 ...]`."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        line = super().formatMessage(record)
        ids = [f"{name}={getattr(record, name)}" for name in FIELDS if hasattr(record, name)]
        return f"{line} [{' '.join(ids)}]" if ids else line


class SecretRedactor(logging.Filter):
    """Replaces each of `secrets` (and any callback token in a URL path) in a record's
    final message, exception and stack text; lets every record through.

    The message is formatted here (`record.msg` becomes the redacted text, `record.args`
    None), and an exception becomes its redacted text (`record.exc_text`), so no later
    formatter sees the raw values."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        values = sorted({s for s in secrets if len(s) >= MIN_SECRET_CHARS}, key=len, reverse=True)
        self._secrets = re.compile("|".join(map(re.escape, values))) if values else None

    def redact(self, text: str) -> str:
        """`text` with every secret replaced by `***` and callback tokens by `<token>`."""
        text = CALLBACK_PATH.sub(CALLBACK_PATH_SHOWN, text)
        return text if self._secrets is None else self._secrets.sub(REDACTED, text)

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self.redact(record.getMessage())
        record.args = None
        if record.exc_info:
            record.exc_text = record.exc_text or _EXCEPTION_TEXT.formatException(record.exc_info)
            record.exc_info = None
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


def secret_values(settings: Settings) -> list[str]:
    """Every secret value `settings` holds: each account's provider key, the signing keys,
    the events token, the AWS secret key, the notification secret, the dashboard token and
    the Redis password (as written in the URL and decoded)."""
    secrets = [account.key for account in settings.accounts]
    secrets += settings.signing_keys
    secrets += [
        secret
        for secret in (
            settings.events_token,
            settings.aws_secret_access_key,
            settings.notify_secret,
            settings.dashboard_token,
        )
        if secret
    ]
    values = [secret.reveal() for secret in secrets]
    password = urlsplit(settings.redis_url).password
    if password:
        values += [password, unquote(password)]
    return values


class _FillpipeHandler(logging.StreamHandler[TextIO]):
    """The handler `configure_logging` installs (and replaces when called again)."""


_EXCEPTION_TEXT = logging.Formatter()


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no such method, or the stream is closed
        return False
