"""Reading event bodies as JSON, bounded whatever the bytes, and naming what was found
in error messages without echoing it whole.

Every failure is a `MalformedEvent`: syntax errors, numbers over `MAX_NUMBER_CHARS`
characters (so the answer does not depend on `sys.set_int_max_str_digits`), NaN and
Infinity (not JSON), and nesting deep enough to exhaust the parser's recursion.
"""

from __future__ import annotations

import json
from typing import Any, NoReturn

from pipeline.errors import MalformedEvent

# Sizes and timestamps fit in 20 digits; a longer number is no field of these shapes.
MAX_NUMBER_CHARS = 40
# How much of an unexpected value an error message quotes.
MAX_QUOTED_CHARS = 60
MAX_KEYS_NAMED = 8


def kind(value: object) -> str:
    """What a JSON value is, in words, for error messages."""
    if value is None:
        return "missing or null"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, str):
        return "an empty string" if not value else f"the string {quote(value)}"
    names = {dict: "a JSON object", list: "a list", int: "a number", float: "a number"}
    return names.get(type(value), type(value).__name__)


def quote(value: object) -> str:
    """A short quotation of `value` that never echoes a huge body."""
    if not isinstance(value, str):
        return kind(value)
    if len(value) <= MAX_QUOTED_CHARS:
        return repr(value)
    return repr(value[:MAX_QUOTED_CHARS]) + f"… ({len(value)} characters)"


def describe(doc: dict[str, Any]) -> str:
    """The first few keys of an unknown JSON object."""
    if not doc:
        return "an empty JSON object"
    names = ", ".join(quote(key) for key in list(doc)[:MAX_KEYS_NAMED])
    more = f" and {len(doc) - MAX_KEYS_NAMED} more" if len(doc) > MAX_KEYS_NAMED else ""
    return f"a JSON object with keys {names}{more}"


def load_json(text: str) -> Any:
    """Parse JSON text; every failure, deep nesting and over-long numbers included, is a
    `MalformedEvent`."""
    try:
        return _DECODER.decode(text)
    except json.JSONDecodeError as error:
        where = f"line {error.lineno}, column {error.colno}"
        raise MalformedEvent(f"the event body is not JSON: {error.msg} ({where})") from None
    except RecursionError:
        raise MalformedEvent("the event body nests too deeply to be an event") from None
    except ValueError as error:
        raise MalformedEvent(f"the event body is not JSON: {quote(str(error))}") from None


def _parse_int(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise MalformedEvent("the event body holds an over-long number")
    return int(text)


def _parse_float(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS:
        raise MalformedEvent("the event body holds an over-long number")
    return float(text)


def _refuse_constant(text: str) -> NoReturn:
    raise MalformedEvent(f"the event body holds {text[:10]!r}, which is not JSON")


# One decoder for every message (`json.loads` with options builds one per call).
_DECODER = json.JSONDecoder(
    parse_int=_parse_int, parse_float=_parse_float, parse_constant=_refuse_constant
)
