"""Running tasks: start them, do their work off the loop, make them Ready on time, report.

A task's work runs in the image thread pool, starting halfway through its drawn latency
(measured from submit); the task then waits out the rest with an asyncio sleep, becomes
Ready, and only then reports to its webhook, so a client that polls on the webhook sees
Ready. The real provider works on its own machines; the emulator works on the caller's
cores, and work started the moment a task is created would compete with exactly the
turn-around a pipeline is measured on (submits bunch up just after tasks finish).
Reading a task (`get_result`) and its result (`sample`) are here too: both sign
delivery URLs.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from emulator.config import EmulatorConfig
from emulator.delivery import DeliverySigner
from emulator.errors import NotFound
from emulator.moderation import moderation_details
from emulator.runtime import Runtime
from emulator.tasks import (
    Caller,
    Latency,
    Sample,
    Task,
    TaskStatus,
    TaskStore,
    not_found_report,
)
from emulator.webhooks import WebhookTarget

FAILED_TASK_DETAIL = "Internal error while generating the result"

T = TypeVar("T")
# A task's work starts this far into its latency (0 = at once, as with no latency).
WORK_START_SHARE = 0.5
logger = logging.getLogger(__name__)


class TaskRunner:
    """Every key's tasks, from start to report."""

    def __init__(
        self,
        config: EmulatorConfig,
        *,
        clock: Callable[[], float],
        runtime: Runtime,
        rng: random.Random,
    ) -> None:
        self._clock = clock
        self._runtime = runtime
        self._rng = rng
        self._tasks = TaskStore(ttl_s=config.task_ttl_s, clock=clock)
        self._signer = DeliverySigner(
            config.delivery_signing_key, ttl_s=config.delivery_ttl_s, clock=clock
        )
        self._latency = Latency(
            config.latency_base_s, config.latency_per_mp_s, config.latency_jitter_s
        )

    def start(
        self,
        caller: Caller,
        task_id: str,
        values: Mapping[str, Any],
        *,
        size_mp: float,
        facts: dict[str, Any] | None = None,
    ) -> Task:
        """A new Pending task of `size_mp` megapixels, reporting to the webhook in `values`."""
        task = Task(
            id=task_id,
            owner=caller.key,
            base_url=caller.base_url,
            created_at=self._clock(),
            latency_s=self._latency.draw(size_mp, self._rng),
            facts=facts or {},
            webhook=_webhook_target(values),
        )
        self._tasks.add(task)
        return task

    async def produce(self, task: Task, work: Callable[[], T]) -> T | None:
        """Run `work` in the pool halfway through the task's latency, then wait out the rest.

        Returns None, the task having become Error, when the work fails.
        """
        try:
            work_at = task.created_at + task.latency_s * WORK_START_SHARE
            await asyncio.sleep(max(0.0, work_at - self._clock()))
            outcome = await self._runtime.run_cpu(work)
            await asyncio.sleep(max(0.0, task.ready_at - self._clock()))
        except Exception:  # any failure of the work ends the task as the provider's Error
            logger.exception("task %s failed", task.id)
            task.fail(self._clock(), FAILED_TASK_DETAIL)
            return None
        return outcome

    def finish(self, task: Task, sample: Sample | None = None) -> None:
        task.finish(self._clock(), sample)

    def moderate(self, task: Task, status: TaskStatus, reasons: list[str]) -> None:
        task.moderate(self._clock(), status, moderation_details(reasons))

    def expire(self, task_id: str) -> bool:
        """Forget `task_id` as if its TTL had passed; False if it was not known."""
        return self._tasks.forget(task_id)

    def summaries(self) -> list[dict[str, Any]]:
        """Every known task, oldest first, for the admin listing."""
        return [task.summary() for task in self._tasks.all()]

    async def notify(self, task: Task) -> None:
        """Report the finished task to its webhook, if it has one; the task records when
        the receiver first answered 2xx."""
        if task.webhook is not None:
            report = task.report(self._clock(), self._sample_url(task))
            await self._runtime.webhooks.send(
                task.webhook, report, lambda: task.delivered(self._clock())
            )

    def report(self, caller: Caller, task_id: str) -> dict[str, Any]:
        """The task as `get_result` reports it; `Task not found` if unknown or expired."""
        task = self._tasks.owned(caller.key, task_id)
        if task is None:
            return not_found_report(task_id)
        return task.report(self._clock(), self._sample_url(task))

    def sample(self, task_id: str, filename: str, *, exp: str | None, sig: str | None) -> Sample:
        """A result behind a signed delivery URL: 403 for a bad or expired signature."""
        self._signer.verify(task_id, filename, exp, sig)
        task = self._tasks.get(task_id)
        if task is None or task.sample is None or task.sample.filename != filename:
            raise NotFound("Not found")
        return task.sample

    def _sample_url(self, task: Task) -> str | None:
        if task.sample is None:
            return None
        return self._signer.url(task.base_url, task.id, task.sample.filename)


def _webhook_target(values: Mapping[str, Any]) -> WebhookTarget | None:
    url = values.get("webhook_url")
    return WebhookTarget(url, values.get("webhook_secret")) if url else None
