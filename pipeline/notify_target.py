"""Where outgoing notifications go: the URL's checks, made before a batch or rule asking
for them is recorded or loaded, and how a URL is shown in logs (see `pipeline.notify`)."""

from __future__ import annotations

from urllib.parse import urlsplit

from pipeline.errors import ConfigError, InputError
from pipeline.settings import Settings


def url_problem(url: str) -> str | None:
    """Why `url` cannot be notified, or None: an http(s) URL with a host."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (a malformed port raises)
    except ValueError:
        return "is not a URL (its address or port does not read)"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{shown_url(url)!r} is not an http:// or https:// URL with a host"
    return None


def check_target(settings: Settings, url: str) -> None:
    """Refuse a notification URL before anything is recorded: `ConfigError` without
    `FILLPIPE_NOTIFY_SECRET`, `InputError` for a URL that is not http(s)."""
    problem = url_problem(url)
    if problem is not None:
        raise InputError(f"--notify: {problem}")
    if settings.notify_secret is None:
        raise ConfigError(
            "--notify needs FILLPIPE_NOTIFY_SECRET (whsec_ and a base64 key, which the "
            "receiver verifies signatures with)"
        )


def shown_url(url: str) -> str:
    """`url` for log lines: no user or password, no query (either may hold a token)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return parts._replace(netloc=netloc, query="", fragment="").geturl()
