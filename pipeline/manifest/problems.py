"""How a manifest's problems show values: quoted if text and cut to a readable length.

The problems themselves (`Problem`, `ManifestInvalid`) are in `pipeline.errors`.
"""

from __future__ import annotations

import json

MAX_SHOWN_CHARS = 60


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
