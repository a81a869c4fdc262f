"""How results are rendered beyond the fill itself: the re-encoding drift and the size.

`Rendering` is read at start from `FILLPIPE_EMULATOR_DRIFT` and
`FILLPIPE_EMULATOR_RESULT_SCALE` (`emulator.config`) and changed at run time through
`PUT /admin/rendering`. A fill takes the setting in force when it is submitted, so a
change never alters a task already accepted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from emulator.errors import InvalidRequest, Issue

MIN_RESULT_SCALE = 0.25
MAX_RESULT_SCALE = 4.0


@dataclass(frozen=True)
class Rendering:
    """`drift`: re-encode the whole result (`emulator.reencode`); `result_scale`: the
    result's size relative to the input's."""

    drift: bool = True
    result_scale: float = 1.0

    def __post_init__(self) -> None:
        problems = [issue.msg for issue in _issues(asdict(self))]
        if problems:
            raise ValueError("; ".join(problems))

    def updated(self, changes: Mapping[str, Any]) -> Rendering:
        """This setting with `changes` applied; `InvalidRequest` lists every bad field."""
        issues = [
            Issue(("body", name), "Unknown rendering setting", "extra_forbidden")
            for name in changes
            if name not in FIELD_NAMES
        ]
        issues += _issues(changes)
        if issues:
            raise InvalidRequest(issues)
        coerced: dict[str, Any] = {
            name: float(value) if name == "result_scale" else value
            for name, value in changes.items()
        }
        return replace(self, **coerced)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


FIELD_NAMES = tuple(each.name for each in fields(Rendering))


def result_scale_problem(value: object) -> str | None:
    """Why `value` is no result scale, or None if it is one."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return "must be a number"
    if not MIN_RESULT_SCALE <= value <= MAX_RESULT_SCALE:
        return f"must be {MIN_RESULT_SCALE:g}..{MAX_RESULT_SCALE:g}"
    return None


def _issues(values: Mapping[str, Any]) -> list[Issue]:
    issues = []
    for name, value in values.items():
        problem = _problem(name, value)
        if problem is not None:
            issues.append(Issue(("body", name), f"{name} {problem}", "value_error"))
    return issues


def _problem(name: str, value: object) -> str | None:
    if name == "drift":
        return None if isinstance(value, bool) else "must be true or false"
    if name == "result_scale":
        return result_scale_problem(value)
    return None
