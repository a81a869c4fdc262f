"""Checking request fields the way the provider's FastAPI/pydantic layer does.

Messages and `type` codes follow pydantic v2 so clients see the provider's wording. The
emulator is deliberately strict where pydantic is lax: JSON types must match exactly
(no "50" for 50, no `true` for 1, no 50.0 for an integer), which surfaces client bugs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any
from urllib.parse import urlsplit

from emulator.errors import InvalidRequest, Issue, raise_for_issues

URL_SCHEMES = ("http", "https")

Problem = tuple[str, str]  # (msg, type)


class Kind(Enum):
    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    URL = "url"


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()
_ABSENT = object()


@dataclass(frozen=True)
class Field:
    """One field of a request: its JSON kind, default and constraints."""

    name: str
    kind: Kind
    default: Any = REQUIRED
    nullable: bool = False
    ge: int | float | None = None
    le: int | float | None = None
    choices: tuple[Any, ...] = ()
    max_length: int | None = None


def parse_json_object(raw: bytes) -> Mapping[str, Any]:
    """The request body as a JSON object, or `InvalidRequest` in FastAPI's form."""
    try:
        data = json.loads(raw, parse_constant=_reject_constant)
    except ValueError as error:
        position = error.pos if isinstance(error, json.JSONDecodeError) else 0
        raise InvalidRequest(
            [Issue(("body", position), "JSON decode error", "json_invalid")]
        ) from None
    if not isinstance(data, dict):
        raise InvalidRequest(
            [
                Issue(
                    ("body",),
                    "Input should be a valid dictionary or object to extract fields from",
                    "model_attributes_type",
                )
            ]
        )
    return data


def validate(
    data: Mapping[str, Any], spec: Sequence[Field], *, location: str = "body"
) -> tuple[dict[str, Any], list[Issue]]:
    """Check `data` against `spec`: the valid values (defaults filled in) and the issues.

    Fields not in `spec` are ignored, as the provider does.
    """
    values: dict[str, Any] = {}
    issues: list[Issue] = []
    for field in spec:
        value = data.get(field.name, _ABSENT)
        problem = _problem(field, value)
        if problem:
            issues.append(Issue((location, field.name), *problem))
        else:
            values[field.name] = field.default if value is _ABSENT else value
    return values, issues


def validated(
    data: Mapping[str, Any], spec: Sequence[Field], *, location: str = "body"
) -> dict[str, Any]:
    """Like `validate`, but raise `InvalidRequest` when any field is bad."""
    values, issues = validate(data, spec, location=location)
    raise_for_issues(issues)
    return values


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _problem(field: Field, value: object) -> Problem | None:
    if value is _ABSENT:
        return ("Field required", "missing") if field.default is REQUIRED else None
    if value is None and field.nullable:
        return None
    return _TYPE_CHECKS[field.kind](value) or _constraint_problem(field, value)


def _constraint_problem(field: Field, value: Any) -> Problem | None:
    if field.choices and value not in field.choices:
        return f"Input should be {_alternatives(field.choices)}", "literal_error"
    if field.ge is not None and value < field.ge:
        return f"Input should be greater than or equal to {field.ge}", "greater_than_equal"
    if field.le is not None and value > field.le:
        return f"Input should be less than or equal to {field.le}", "less_than_equal"
    if field.max_length is not None and len(value) > field.max_length:
        return _too_long(field, field.max_length)
    return None


def _too_long(field: Field, limit: int) -> Problem:
    if field.kind is Kind.URL:
        return f"URL should have at most {limit} characters", "url_too_long"
    return f"String should have at most {limit} characters", "string_too_long"


def _alternatives(choices: tuple[Any, ...]) -> str:
    shown = [repr(choice) for choice in choices]
    return " or ".join(shown) if len(shown) < 3 else f"{', '.join(shown[:-1])} or {shown[-1]}"


def _string_problem(value: object) -> Problem | None:
    return None if isinstance(value, str) else ("Input should be a valid string", "string_type")


def _integer_problem(value: object) -> Problem | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return None
    return "Input should be a valid integer", "int_type"


def _number_problem(value: object) -> Problem | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "Input should be a valid number", "float_type"
    if isinstance(value, float) and not math.isfinite(value):  # "1e999" parses as inf
        return "Input should be a finite number", "finite_number"
    return None


def _boolean_problem(value: object) -> Problem | None:
    return None if isinstance(value, bool) else ("Input should be a valid boolean", "bool_type")


def _url_problem(value: object) -> Problem | None:
    if not isinstance(value, str):
        return "URL input should be a string or URL", "url_type"
    if not value:
        return "Input should be a valid URL, input is empty", "url_parsing"
    try:
        parts = urlsplit(value)
    except ValueError:
        return "Input should be a valid URL", "url_parsing"
    if not parts.scheme or not parts.netloc:
        return "Input should be a valid URL, relative URL without a base", "url_parsing"
    if parts.scheme not in URL_SCHEMES:
        return "URL scheme should be 'http' or 'https'", "url_scheme"
    return None


_TYPE_CHECKS: dict[Kind, Callable[[object], Problem | None]] = {
    Kind.STRING: _string_problem,
    Kind.INTEGER: _integer_problem,
    Kind.NUMBER: _number_problem,
    Kind.BOOLEAN: _boolean_problem,
    Kind.URL: _url_problem,
}
