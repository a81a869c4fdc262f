"""Provider tasks (fills and finetune trainings): their lifecycle, timing and store.

A task is `Pending` from submit until `created_at + latency_s` at the earliest, then
ends `Ready` (or `Error`). `get_result` reports it until `task_ttl_s` after submit;
after that, and for ids it never knew, it answers `Task not found`. Time comes from the
injected clock; the HTTP layer is not involved here.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import urlencode

from emulator.images import FILE_EXTENSIONS, MEDIA_TYPES
from emulator.webhooks import WebhookTarget

# Progress stays below 1 until the task is really Ready.
MAX_PENDING_PROGRESS = 0.99


@dataclass(frozen=True)
class Caller:
    """Who sent a request (the authenticated key) and where: the base URL for the links
    in its answers, and the API's path prefix (`/v1`, or `/flux/v1` for CometAPI)."""

    key: str
    base_url: str
    api_prefix: str

    def polling_url(self, task_id: str) -> str:
        return f"{self.base_url}{self.api_prefix}/get_result?{urlencode({'id': task_id})}"


class TaskStatus(StrEnum):
    """The provider's task statuses, verbatim."""

    PENDING = "Pending"
    READY = "Ready"
    ERROR = "Error"
    REQUEST_MODERATED = "Request Moderated"
    CONTENT_MODERATED = "Content Moderated"
    NOT_FOUND = "Task not found"


@dataclass(frozen=True)
class Latency:
    """How long a task stays Pending: base + per megapixel, with uniform jitter."""

    base_s: float
    per_mp_s: float
    jitter_s: float

    def draw(self, megapixels: float, rng: random.Random) -> float:
        jitter_s = rng.uniform(-self.jitter_s, self.jitter_s)
        return max(0.0, self.base_s + self.per_mp_s * megapixels + jitter_s)


@dataclass(frozen=True)
class Sample:
    """A finished fill's image, as served from its delivery URL."""

    data: bytes
    output_format: str

    @property
    def filename(self) -> str:
        return f"sample.{FILE_EXTENSIONS[self.output_format]}"

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.output_format]


@dataclass(eq=False)
class Task:
    """One task of one key. `facts` are what its result reports besides sample and timing."""

    id: str
    owner: str
    base_url: str
    created_at: float
    latency_s: float
    facts: dict[str, Any] = field(default_factory=dict)
    webhook: WebhookTarget | None = None
    status: TaskStatus = TaskStatus.PENDING
    finished_at: float | None = None
    # When its webhook was first answered 2xx; None until then (or without a webhook).
    webhook_at: float | None = None
    sample: Sample | None = None
    details: dict[str, Any] | None = None

    @property
    def ready_at(self) -> float:
        return self.created_at + self.latency_s

    def finish(self, now: float, sample: Sample | None = None) -> None:
        self.status, self.finished_at, self.sample = TaskStatus.READY, now, sample

    def fail(self, now: float, reason: str) -> None:
        self.status, self.finished_at, self.details = TaskStatus.ERROR, now, {"error": reason}

    def moderate(self, now: float, status: TaskStatus, details: dict[str, Any]) -> None:
        """End as `Request Moderated` or `Content Moderated`, without a result."""
        self.status, self.finished_at, self.details = status, now, details

    def delivered(self, now: float) -> None:
        """Its webhook was answered 2xx; only the first delivery counts."""
        if self.webhook_at is None:
            self.webhook_at = now

    def summary(self) -> dict[str, Any]:
        """The task as the admin listing shows it."""
        return {
            "id": self.id,
            "owner": self.owner,
            "status": self.status.value,
            "created_at": self.created_at,
            "finished_at": self.finished_at,
            "webhook_at": self.webhook_at,
            "seed": self.facts.get("seed"),
        }

    def progress(self, now: float) -> float | None:
        """0..1 while Pending, growing over the latency; 1 when Ready."""
        if self.status is TaskStatus.READY:
            return 1.0
        if self.status is not TaskStatus.PENDING:
            return None
        if self.latency_s <= 0:
            return MAX_PENDING_PROGRESS
        return min(MAX_PENDING_PROGRESS, max(0.0, (now - self.created_at) / self.latency_s))

    def report(self, now: float, sample_url: str | None) -> dict[str, Any]:
        """The task as `get_result` answers it, with `sample_url` signed by the caller."""
        return {
            "id": self.id,
            "status": self.status.value,
            "result": self._result(sample_url),
            "progress": self.progress(now),
            "details": self.details,
            "preview": None,
        }

    def _result(self, sample_url: str | None) -> dict[str, Any] | None:
        if self.status is not TaskStatus.READY or self.finished_at is None:
            return None
        sample = {"sample": sample_url} if sample_url else {}
        return {
            **sample,
            **self.facts,
            "start_time": self.created_at,
            "end_time": self.finished_at,
            "duration": self.finished_at - self.created_at,
        }


def not_found_report(task_id: str) -> dict[str, Any]:
    """`get_result`'s answer for an unknown or expired id (HTTP 200, as the provider)."""
    return {
        "id": task_id,
        "status": TaskStatus.NOT_FOUND.value,
        "result": None,
        "progress": None,
        "details": None,
        "preview": None,
    }


class TaskStore:
    """Tasks by id, forgotten `ttl_s` after their submit."""

    def __init__(self, *, ttl_s: float, clock: Callable[[], float]) -> None:
        self._ttl_s = ttl_s
        self._clock = clock
        # Insertion order is submit order, so the oldest task is always first.
        self._tasks: OrderedDict[str, Task] = OrderedDict()

    def add(self, task: Task) -> None:
        self._forget_expired()
        self._tasks[task.id] = task

    def get(self, task_id: str) -> Task | None:
        self._forget_expired()
        return self._tasks.get(task_id)

    def owned(self, owner: str, task_id: str) -> Task | None:
        """The task if it exists and belongs to `owner`: keys never see each other's tasks."""
        task = self.get(task_id)
        return task if task is not None and task.owner == owner else None

    def forget(self, task_id: str) -> bool:
        """Expire `task_id` now; False if it was not known."""
        return self._tasks.pop(task_id, None) is not None

    def all(self) -> list[Task]:
        """Every known task, oldest first."""
        self._forget_expired()
        return list(self._tasks.values())

    def _forget_expired(self) -> None:
        deadline = self._clock() - self._ttl_s
        while self._tasks and next(iter(self._tasks.values())).created_at <= deadline:
            self._tasks.popitem(last=False)
