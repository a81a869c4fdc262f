"""What is wrong with a manifest: each problem with its place, and the error listing them.

Values shown in messages are quoted if text and cut to a readable length.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pipeline.errors import InputError

MAX_SHOWN_CHARS = 60
MAX_PROBLEMS_LISTED = 200


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a manifest, where it is and how to fix it."""

    source: str
    line: int
    field: str
    message: str
    hint: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}: " + (f"{self.field}: " if self.field else "")
        return where + self.message + (f" ({self.hint})" if self.hint else "")


class ManifestInvalid(InputError):
    """The manifest has problems; `problems` lists every one of them."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(problems)
        self.problems = problems

    def __str__(self) -> str:
        count = len(self.problems)
        lines = [f"the manifest has {count} problem{'' if count == 1 else 's'}:"]
        lines += [str(problem) for problem in self.problems[:MAX_PROBLEMS_LISTED]]
        if count > MAX_PROBLEMS_LISTED:
            lines.append(f"… and {count - MAX_PROBLEMS_LISTED} more")
        return "\n".join(lines)


def plain(number: float) -> str:
    """A number for a message: whole numbers without a decimal point."""
    if isinstance(number, int) or (isinstance(number, float) and number.is_integer()):
        return str(int(number))
    return repr(number)


def show(value: object) -> str:
    """A value for a message: quoted if text, cut to a readable length."""
    text = repr(value) if isinstance(value, str) else json.dumps(value, default=str)
    return cut(text)


def cut(text: str) -> str:
    """`text` cut to `MAX_SHOWN_CHARS`, an ellipsis marking the cut."""
    return text if len(text) <= MAX_SHOWN_CHARS else text[: MAX_SHOWN_CHARS - 1] + "…"
