"""The emulated provider: one method per API operation, free of HTTP.

Requests arrive as parsed JSON from a `Caller`; answers are JSON-ready dicts; refusals
are `emulator.errors.ApiError`s. A submit is validated in full (every bad field
listed), charged, and answered at once; its task then runs in the background
(`emulator.runner`). Moderated prompts (`emulator.moderation`) are answered alike but
never charged: at once `Request Moderated`, or `Content Moderated` once processed.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from typing import Any

from emulator.accounts import Accounts
from emulator.config import EmulatorConfig
from emulator.errors import InvalidRequest, Issue, NotFound, raise_for_issues
from emulator.fills import FillImages, FillJob, read_fill_images, render
from emulator.finetunes import Finetune, FinetuneRegistry, read_training_images
from emulator.images import RGB, ImageError
from emulator.inpaint import FillParams
from emulator.moderation import Moderation
from emulator.pricing import fill_cost, megapixels, reported_megapixels
from emulator.rendering import Rendering
from emulator.runner import TaskRunner
from emulator.runtime import Runtime
from emulator.schemas import (
    FILL_FIELDS,
    FINETUNE_FIELDS,
    FINETUNE_ID_FIELDS,
    FINETUNE_SETTING_FIELDS,
    FINETUNED_FILL_FIELDS,
)
from emulator.style import Style, learn_style
from emulator.tasks import Caller, Sample, Task, TaskStatus
from emulator.validation import validate, validated

# Seeds drawn for submits without one: the range BFL reports back.
RANDOM_SEED_LIMIT = 2**32


class Provider:
    """Accounts, tasks and finetunes of every key, and the operations on them."""

    def __init__(
        self,
        config: EmulatorConfig,
        *,
        clock: Callable[[], float],
        runtime: Runtime,
        rng: random.Random | None = None,
    ) -> None:
        self._clock = clock
        self._runtime = runtime
        self._rng = rng or random.Random()
        self._accounts = Accounts(config)
        self._finetunes = FinetuneRegistry()
        self._tasks = TaskRunner(config, clock=clock, runtime=runtime, rng=self._rng)
        self._moderation = Moderation(config.moderation_words, config.content_moderation_word)
        self._rendering = config.rendering

    # -- fills -------------------------------------------------------------------------

    async def submit_fill(
        self, caller: Caller, body: Mapping[str, Any], *, finetuned: bool
    ) -> dict[str, Any]:
        """Validate, charge and start a fill; answer with its id, polling URL and cost."""
        values, issues = validate(body, FINETUNED_FILL_FIELDS if finetuned else FILL_FIELDS)
        style, finetune_issues = self._finetune_style(caller.key, values.get("finetune_id"))
        images = await self._fill_images(values, [*issues, *finetune_issues])
        reasons = self._moderation.request_reasons(values["prompt"])
        if reasons:
            return self._refuse_fill(caller, values, images, reasons)
        cost = fill_cost(images.width, images.height, finetuned=finetuned)
        self._accounts[caller.key].open_task(cost)
        task, job = self._fill_task(caller, values, images, style)
        self._runtime.spawn(self._run_fill(task, job, cost))
        return _submitted(caller, task, images, cost)

    def _refuse_fill(
        self, caller: Caller, values: Mapping[str, Any], images: FillImages, reasons: list[str]
    ) -> dict[str, Any]:
        """A `Request Moderated` task: answered like any submit, never charged."""
        task, _ = self._fill_task(caller, values, images, None)
        self._tasks.moderate(task, TaskStatus.REQUEST_MODERATED, reasons)
        self._runtime.spawn(self._tasks.notify(task))
        return _submitted(caller, task, images, Decimal(0))

    def _finetune_style(
        self, owner: str, finetune_id: str | None
    ) -> tuple[Style | None, list[Issue]]:
        if finetune_id is None:
            return None, []
        finetune = self._finetunes.owned(owner, finetune_id)
        if finetune is None:
            return None, [_finetune_issue(f"Finetune {finetune_id} not found")]
        if finetune.style is None:
            return None, [
                _finetune_issue(
                    f"Finetune {finetune_id} is not ready (status {finetune.status.value})"
                )
            ]
        return finetune.style, []

    async def _fill_images(self, values: Mapping[str, Any], issues: list[Issue]) -> FillImages:
        """The submitted images; `InvalidRequest` lists their problems with `issues`."""
        if "image" not in values or "mask" not in values:
            raise InvalidRequest(issues)  # which holds why these fields are missing
        try:
            images = await self._runtime.read_request(
                read_fill_images,
                values["image"],
                values["mask"],
                size=len(values["image"]) + len(values["mask"] or ""),
            )
        except InvalidRequest as error:
            raise InvalidRequest([*issues, *error.issues]) from None
        raise_for_issues(issues)
        return images

    def _fill_task(
        self, caller: Caller, values: Mapping[str, Any], images: FillImages, style: Style | None
    ) -> tuple[Task, FillJob]:
        seed = values["seed"] if values["seed"] is not None else self._random_seed()
        params = FillParams(
            prompt=values["prompt"],
            seed=seed,
            steps=values["steps"],
            guidance=float(values["guidance"]),
            finetune_strength=float(values.get("finetune_strength", 0.0)),
        )
        task = self._tasks.start(
            caller,
            str(uuid.uuid4()),
            values,
            size_mp=megapixels(images.width, images.height),
            facts={"prompt": params.prompt, "seed": seed},
        )
        return task, FillJob(images, params, style, values["output_format"], self._rendering)

    async def _run_fill(self, task: Task, job: FillJob, cost: Decimal) -> None:
        try:
            sample = await self._tasks.produce(task, partial(render, job))
            if sample is not None:
                self._end_fill(task, job, sample)
        finally:
            refund = Decimal(0) if task.status is TaskStatus.READY else cost
            self._accounts[task.owner].close_task(refund=refund)
        await self._tasks.notify(task)

    def _end_fill(self, task: Task, job: FillJob, sample: Sample) -> None:
        reasons = self._moderation.content_reasons(job.params.prompt)
        if reasons:
            self._tasks.moderate(task, TaskStatus.CONTENT_MODERATED, reasons)
        else:
            self._tasks.finish(task, sample)

    # -- results -----------------------------------------------------------------------

    def get_result(self, caller: Caller, task_id: str) -> dict[str, Any]:
        """The task as the provider reports it; `Task not found` for unknown or expired ids."""
        return self._tasks.report(caller, task_id)

    def sample(self, task_id: str, filename: str, *, exp: str | None, sig: str | None) -> Sample:
        """A result behind a signed delivery URL: 403 for a bad or expired signature."""
        return self._tasks.sample(task_id, filename, exp=exp, sig=sig)

    def expire(self, task_id: str) -> bool:
        """Forget `task_id` now, as if its TTL had passed; False if it was not known."""
        return self._tasks.expire(task_id)

    # -- finetunes ---------------------------------------------------------------------

    async def create_finetune(self, caller: Caller, body: Mapping[str, Any]) -> dict[str, Any]:
        """Validate a training request and start training; answer with the finetune id."""
        values, issues = validate(body, FINETUNE_FIELDS)
        images = await self._training_images(values, issues)
        finetune = Finetune(
            id=str(uuid.uuid4()),
            owner=caller.key,
            created_at=self._timestamp(),
            settings={field.name: values[field.name] for field in FINETUNE_SETTING_FIELDS},
            image_count=len(images),
        )
        training_mp = sum(megapixels(image.shape[1], image.shape[0]) for image in images)
        task = self._tasks.start(caller, finetune.id, values, size_mp=training_mp)
        self._finetunes.add(finetune)
        self._runtime.spawn(self._train(task, finetune, images))
        return {"finetune_id": finetune.id}

    async def _training_images(self, values: Mapping[str, Any], issues: list[Issue]) -> list[RGB]:
        """The zip's images; `InvalidRequest` lists their problems with `issues`."""
        if "file_data" not in values:
            raise InvalidRequest(issues)  # which holds why file_data is missing
        try:
            images = await self._runtime.read_request(
                read_training_images, values["file_data"], size=len(values["file_data"])
            )
        except ImageError as error:
            raise InvalidRequest(
                [*issues, Issue(("body", "file_data"), str(error), "value_error")]
            ) from None
        raise_for_issues(issues)
        return images

    async def _train(self, task: Task, finetune: Finetune, images: list[RGB]) -> None:
        style = await self._tasks.produce(task, partial(learn_style, images))
        finetune.trained(style)
        if style is not None:
            self._tasks.finish(task)
        await self._tasks.notify(task)

    def finetune_details(self, caller: Caller, finetune_id: str) -> dict[str, Any]:
        return {"finetune_details": self._owned_finetune(caller.key, finetune_id).details()}

    def my_finetunes(self, caller: Caller) -> dict[str, Any]:
        return {"finetunes": self._finetunes.ids(caller.key)}

    def delete_finetune(self, caller: Caller, body: Mapping[str, Any]) -> dict[str, Any]:
        finetune_id = validated(body, FINETUNE_ID_FIELDS)["finetune_id"]
        if self._finetunes.remove(caller.key, finetune_id) is None:
            raise NotFound(f"Finetune {finetune_id} not found")
        return {
            "status": "success",
            "message": f"Finetune {finetune_id} deleted",
            "deleted_finetune_id": finetune_id,
            "timestamp": self._timestamp(),
        }

    def _owned_finetune(self, owner: str, finetune_id: str) -> Finetune:
        finetune = self._finetunes.owned(owner, finetune_id)
        if finetune is None:
            raise NotFound(f"Finetune {finetune_id} not found")
        return finetune

    # -- accounts ----------------------------------------------------------------------

    def credits(self, caller: Caller) -> dict[str, Any]:
        return {"credits": float(self._accounts[caller.key].credits)}

    def set_credits(self, key: str, credits: float) -> dict[str, Any]:
        """Set `key`'s balance (opening its account if need be), for the admin API."""
        self._accounts[key].set_credits(Decimal(str(credits)))
        return {"credits": float(self._accounts[key].credits)}

    def rendering(self) -> Rendering:
        """The rendering settings fills submitted now take."""
        return self._rendering

    def update_rendering(self, changes: Mapping[str, Any]) -> Rendering:
        """Apply `changes` (validated) to the rendering of fills submitted from now on."""
        self._rendering = self._rendering.updated(changes)
        return self._rendering

    def stats(self) -> dict[str, Any]:
        """Per-key counters for the admin API."""
        return {"accounts": self._accounts.stats()}

    def task_list(self) -> dict[str, Any]:
        """Every known task of every key, oldest first, for the admin API."""
        return {"tasks": self._tasks.summaries()}

    def _random_seed(self) -> int:
        return self._rng.randrange(RANDOM_SEED_LIMIT)

    def _timestamp(self) -> str:
        return datetime.fromtimestamp(self._clock(), UTC).isoformat()


def _submitted(caller: Caller, task: Task, images: FillImages, cost: Decimal) -> dict[str, Any]:
    size_mp = reported_megapixels(images.width, images.height)
    return {
        "id": task.id,
        "polling_url": caller.polling_url(task.id),
        "cost": float(cost),
        "input_mp": size_mp,
        "output_mp": size_mp,
    }


def _finetune_issue(message: str) -> Issue:
    return Issue(("body", "finetune_id"), message, "value_error")
