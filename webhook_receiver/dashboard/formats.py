"""How the dashboard's pages write times, durations and money (Jinja filters)."""

from __future__ import annotations

from datetime import UTC, datetime

from jinja2 import Environment

from pipeline.models import CREDITS_PER_USD


def when(epoch_s: float) -> str:
    """An instant in UTC, to the second."""
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%d %H:%M:%S")


def duration(seconds: float | None) -> str:
    """A duration as people read it ("1 h 05 min", "3 min 20 s", "12 s"); "-" if unknown."""
    if seconds is None:
        return "-"
    total = round(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def usd(credits: float | None) -> str:
    """Credits as dollars: "$1.23", or "$0.0014" below a cent; "-" if unknown."""
    if credits is None:
        return "-"
    dollars = credits / CREDITS_PER_USD
    return f"${dollars:,.4f}" if 0 < dollars < 0.01 else f"${dollars:,.2f}"


def install(env: Environment) -> None:
    """Make the filters above available to the templates."""
    env.filters.update(when=when, duration=duration, usd=usd)
