"""What a provider callback body says, parsed only after the body has been verified.

The provider sends one of two shapes (PROVIDER.md, "Webhooks"):

    {"task_id": …, "status": "SUCCESS" | "processing" | "FAILED" | …, "result": {…}}
    {"id": …, "status": "Ready" | "Pending" | "Error" | …, "result": {…}}

Only the task id and the status are read; unknown fields are ignored. The report is a
hint: the collect task reads the outcome from the provider itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pipeline.errors import FillpipeError
from pipeline.provider import TaskStatus

MAX_TASK_ID_CHARS = 200

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


class MalformedCallback(FillpipeError):
    """A verified callback whose body is not one of the provider's shapes."""


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
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as error:
        raise MalformedCallback("callback body is not JSON") from error
    if not isinstance(payload, dict):
        raise MalformedCallback("callback body is not a JSON object")
    task_id = payload.get("task_id", payload.get("id"))
    if task_id is not None and (
        not isinstance(task_id, str) or not 0 < len(task_id) <= MAX_TASK_ID_CHARS
    ):
        raise MalformedCallback("callback task id is not a short string")
    status = payload.get("status")
    if not isinstance(status, str):
        raise MalformedCallback("callback status is missing or not a string")
    return CallbackReport(task_id=task_id, status=_STATUS_WORDS.get(status.strip().lower()))
