import itertools

import pytest

from pipeline.batches import create_batch, default_output_uri
from pipeline.images import inputs_digest
from pipeline.models import EditParams, JobRef, JobSpec
from pipeline.runtime import Runtime
from pipeline.settings import Settings
from pipeline.storage import S3Uri
from tests.pipeline.fakes import PROVIDER_URL, FakeProvider, png

_batches = itertools.count(1)


class Clock:
    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fake() -> FakeProvider:
    return FakeProvider()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def settings(valkey_url, s3_env) -> Settings:
    return Settings.from_environ(
        {
            **s3_env,
            "FILLPIPE_REDIS_URL": valkey_url,
            "FILLPIPE_PROVIDER_URL": PROVIDER_URL,
            "FILLPIPE_PROVIDER_KEY": "test-provider-key",
            "FILLPIPE_PUBLIC_URL": "https://hooks.example.com",
            "FILLPIPE_SIGNING_KEY": "s" * 40,
        }
    )


@pytest.fixture
def rt(settings, fake, clock):
    """A runtime on a fresh ledger (the dispatcher's slots and lines are account-wide)."""
    runtime = Runtime.from_settings(
        settings,
        clock=clock,
        provider_transport=fake.provider_transport(),
        result_transport=fake.delivery_transport(),
    )
    runtime.ledger.redis.flushdb()
    yield runtime
    runtime.close()


def take_outbox(rt: Runtime, task: str) -> list[tuple[JobRef, int]]:
    """The jobs and attempts of the outbox's `task` entries, oldest first, taken out of
    the outbox (no relay runs in these tests: the test plays the worker)."""
    entries = [entry for entry in rt.ledger.outbox.waiting() if entry.task == task]
    if entries:
        rt.ledger.redis.xdel(rt.ledger.keys.outbox, *(entry.entry_id for entry in entries))
    return [(entry.ref, entry.attempt) for entry in entries]


def take_submits(rt: Runtime) -> list[tuple[JobRef, int]]:
    """The jobs the dispatcher leased a slot to since the last call, with their attempts."""
    return take_outbox(rt, "submit")


@pytest.fixture
def new_job(rt):
    """Make a one-job batch with inputs in S3; returns its JobRef."""

    def make(
        image: bytes | None = None,
        mask: bytes | None = b"default",
        job_id: str = "job 1+ü",
        output_uri: str | None = None,
        checked: bool = False,
    ) -> JobRef:
        batch_id = f"t{next(_batches)}-{id(rt):x}"
        prefix = f"s3://{rt.settings.bucket}/inputs/{batch_id}/{job_id}"
        image_uri, mask_uri = f"{prefix}.png", f"{prefix}-mask.png"
        image = image or png()
        rt.storage.write(S3Uri.parse(image_uri), image, content_type="image/png")
        if mask == b"default":
            mask = png(mode="L")
        if mask is not None:
            rt.storage.write(S3Uri.parse(mask_uri), mask, content_type="image/png")
        params = EditParams(prompt="a red mug", finetune_id="ft-1", output_format="png")
        spec = JobSpec(
            ref=JobRef(batch_id, job_id),
            image_uri=image_uri,
            mask_uri=mask_uri if mask is not None else None,
            output_uri=output_uri or default_output_uri(rt, batch_id, job_id, "png"),
            params=params,
            tags={"campaign": "spring"},
            # As `fillpipe submit` records the inputs it decoded in full.
            checked_inputs=inputs_digest(image, mask) if checked else None,
        )
        create_batch(rt, batch_id, [spec])
        return spec.ref

    return make
