"""Helpers for tests that drive a whole embedded stack: a finetune, a batch, waiting."""

from __future__ import annotations

import time
from collections.abc import Sequence

import httpx

from fillpipe.samples import Sample, finetune_zip, make_finetune_images
from fillpipe.stack import EmbeddedStack
from pipeline.batches import create_batch, default_output_uri, new_batch_id
from pipeline.ledger import BatchSummary, Ledger
from pipeline.models import EditParams, JobRef, JobSpec
from pipeline.provider import TaskStatus
from pipeline.runtime import Runtime
from pipeline.storage import S3Uri

FINETUNE_READY_TIMEOUT_S = 60.0


def train_finetune(rt: Runtime) -> str:
    """A finetune trained on the stack's emulator, once it is ready for use."""
    finetune = rt.provider.create_finetune(
        finetune_zip(make_finetune_images()), comment="tests", trigger_word="TST"
    )
    polling_url = rt.provider.fallback_polling_url(finetune)
    deadline = time.monotonic() + FINETUNE_READY_TIMEOUT_S
    while rt.provider.get_result(polling_url).status is not TaskStatus.READY:
        if time.monotonic() > deadline:
            raise AssertionError("the test finetune never became ready")
        time.sleep(0.2)
    return finetune


def upload_batch(
    rt: Runtime,
    finetune_id: str,
    samples: Sequence[Sample],
    *,
    tags: dict[str, str],
    priority: int = 1,
) -> tuple[str, list[JobSpec]]:
    """Upload each sample's image and mask, and record them as one batch (seed = index)."""
    batch_id = new_batch_id()
    specs = []
    for index, sample in enumerate(samples, start=1):
        prefix = f"s3://{rt.settings.bucket}/inputs/{batch_id}/{sample.name}"
        rt.storage.write(S3Uri.parse(prefix + ".png"), sample.image_png, content_type="image/png")
        rt.storage.write(S3Uri.parse(prefix + "-m.png"), sample.mask_png, content_type="image/png")
        params = EditParams(
            prompt=sample.prompt, finetune_id=finetune_id, seed=index, output_format="png"
        )
        specs.append(
            JobSpec(
                ref=JobRef(batch_id, sample.name),
                image_uri=prefix + ".png",
                mask_uri=prefix + "-m.png",
                output_uri=default_output_uri(rt, batch_id, sample.name, "png"),
                params=params,
                tags=tags,
            )
        )
    create_batch(rt, batch_id, specs, priority=priority)
    return batch_id, specs


def wait_until_done(ledger: Ledger, batch_id: str, *, timeout_s: float) -> BatchSummary:
    deadline = time.monotonic() + timeout_s
    while not (summary := ledger.summary(batch_id)).done:
        assert time.monotonic() < deadline, f"batch not done after {timeout_s:.0f} s: {summary}"
        time.sleep(0.2)
    return summary


def emulator_admin(stack: EmbeddedStack) -> httpx.Client:
    """A client for the stack's emulator admin API (`/admin/stats`, `/admin/tasks`…)."""
    env = stack.env
    return httpx.Client(
        base_url=env["FILLPIPE_PROVIDER_URL"],
        headers={"x-admin-token": env["FILLPIPE_EMULATOR_ADMIN_TOKEN"]},
        timeout=10.0,
    )
