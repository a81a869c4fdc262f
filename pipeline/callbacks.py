"""What a provider callback body says, parsed only after the body has been verified.

The provider sends one of two shapes (docs/provider.md, "Webhooks"):

    {"task_id": …, "status": "SUCCESS" | "processing" | "FAILED" | …, "result": {…}}
    {"id": …, "status": "Ready" | "Pending" | "Error" | …, "result": {…}}

Only the task id and the status are read; unknown fields are ignored. The report is a
hint: the collect task reads the outcome from the provider itself.

The parser is bounded whatever the bytes: nesting deeper than `MAX_DEPTH` is refused by
a scan before `json.loads` recurses, integers longer than `MAX_NUMBER_CHARS` digits and
long or non-finite floats are refused without being converted (so the answer does not
depend on `sys.set_int_max_str_digits`), and the task id must be a short token that is
safe to store and to put in a polling URL. Every failure is a `MalformedCallback`.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, NoReturn

from pipeline.errors import MalformedCallback
from pipeline.provider import TaskStatus

MAX_TASK_ID_CHARS = 200
MAX_STATUS_CHARS = 64
# Callback documents nest two or three levels; anything deeper is not the provider.
MAX_DEPTH = 32
# Seeds and timestamps fit in 20 digits; a float needs at most ~25 characters.
MAX_NUMBER_CHARS = 40

# Provider task ids are UUIDs; allow a little more, never URL or key syntax.
_TASK_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*")
# JSON strings (escapes included; unterminated ones run to the end), blanked out before
# brackets are counted. Possessive and always matching, so the scan is linear.
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*+"?', re.DOTALL)
_BRACKETS = re.compile(rb"[\[\]{}]")

_STATUS_WORDS: dict[str, TaskStatus] = {
    "success": TaskStatus.READY,
    "ready": TaskStatus.READY,
    "pending": TaskStatus.PENDING,
    "processing": TaskStatus.PENDING,
    "failed": TaskStatus.ERROR,
    "error": TaskStatus.ERROR,
    "request moderated": TaskStatus.REQUEST_MODERATED,
    "content moderated": TaskStatus.CONTENT_MODERATED,
    "task not found": TaskStatus.NOT_FOUND,
}


@dataclass(frozen=True)
class CallbackReport:
    """The parts of a callback body fillpipe uses: the provider's task id and status.

    `status` is None for a status word fillpipe does not know.
    """

    task_id: str | None
    status: TaskStatus | None

    @property
    def is_final(self) -> bool:
        """True when the provider says the task has ended (its slot is free)."""
        return self.status is not None and self.status.is_final


def parse_callback(body: bytes) -> CallbackReport:
    """Read a callback body of either shape; raise `MalformedCallback` otherwise."""
    payload = _load_bounded(body)
    if not isinstance(payload, dict):
        raise MalformedCallback("callback body is not a JSON object")
    task_id = _task_id(payload)
    status = payload.get("status")
    if not isinstance(status, str) or not 0 < len(status) <= MAX_STATUS_CHARS:
        raise MalformedCallback("callback status is missing or not a short string")
    result = payload.get("result")
    if result is not None and not isinstance(result, dict):
        raise MalformedCallback("callback result is not an object")
    return CallbackReport(task_id=task_id, status=_STATUS_WORDS.get(status.strip().lower()))


def _task_id(payload: dict[str, Any]) -> str | None:
    """`task_id` (webhook shape) or `id` (get_result shape); both must agree if both given."""
    named = [payload[key] for key in ("task_id", "id") if payload.get(key) is not None]
    if not named:
        return None
    if len(named) == 2 and named[0] != named[1]:
        raise MalformedCallback("callback names two different task ids")
    task_id = named[0]
    if (
        not isinstance(task_id, str)
        or len(task_id) > MAX_TASK_ID_CHARS
        or not _TASK_ID.fullmatch(task_id)
    ):
        raise MalformedCallback("callback task id is not a short token")
    return task_id


def _load_bounded(body: bytes) -> Any:
    _check_depth(body)
    try:
        # UTF-8 only, as RFC 8259 asks of JSON between systems (and the content-type
        # check allows no other charset).
        return _DECODER.decode(body.decode("utf-8"))
    except MalformedCallback:
        raise
    except (ValueError, RecursionError, TypeError) as error:
        # UnicodeDecodeError and JSONDecodeError are ValueErrors.
        raise MalformedCallback("callback body is not JSON") from error


def _check_depth(body: bytes) -> None:
    """Refuse documents nested deeper than `MAX_DEPTH`, without recursing."""
    stripped = _JSON_STRING.sub(b"", body)
    if stripped.count(b"[") + stripped.count(b"{") <= MAX_DEPTH:
        return  # cannot nest deeper than the number of openings
    depth = 0
    for match in _BRACKETS.finditer(stripped):
        if match[0] in (b"[", b"{"):
            depth += 1
            if depth > MAX_DEPTH:
                raise MalformedCallback(f"callback body nests deeper than {MAX_DEPTH}")
        else:
            depth -= 1


def _parse_int(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise MalformedCallback("callback body holds an over-long number")
    return int(text)


def _parse_float(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS:
        raise MalformedCallback("callback body holds an over-long number")
    number = float(text)
    if not math.isfinite(number):
        raise MalformedCallback("callback body holds a number out of range")
    return number


def _refuse_constant(text: str) -> NoReturn:
    raise MalformedCallback(f"callback body holds {text[:10]!r}, which is not JSON")


# One decoder for every callback (`json.loads` with options builds one per call).
_DECODER = json.JSONDecoder(
    parse_int=_parse_int, parse_float=_parse_float, parse_constant=_refuse_constant
)
