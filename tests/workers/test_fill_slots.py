"""`fill_slots`: what it leases and stages, which submits it queues, and which jobs it
keeps for its caller to submit itself (the dispatch task's first lease, the next staged
job of a submit task that has POSTed)."""

import base64
import json

import pytest

from pipeline.models import EditParams, JobRef, JobSpec, JobState
from pipeline.runtime import Runtime
from workers import context
from workers.app import QUEUE_SUBMIT
from workers.tasks import fill_slots

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

SLOTS, STAGED = 2, 2


@pytest.fixture
def rt(fresh_context, valkey_url, s3_env):
    """This process's worker runtime, on a Valkey no worker consumes from."""
    settings = {
        **s3_env,
        "FILLPIPE_REDIS_URL": valkey_url,
        "FILLPIPE_PROVIDER_URL": "http://127.0.0.1:1",
        "FILLPIPE_PROVIDER_KEY": "test-provider-key",
        "FILLPIPE_PUBLIC_URL": "http://127.0.0.1:1",
        "FILLPIPE_SIGNING_KEY": "s" * 40,
        "FILLPIPE_PROVIDER_SLOTS": str(SLOTS),
        "FILLPIPE_STAGED_SUBMITS": str(STAGED),
    }
    for name, value in settings.items():
        fresh_context.setenv(name, value)
    runtime = context.runtime()
    runtime.ledger.redis.flushdb()
    return runtime


def make_batch(rt: Runtime, size: int) -> list[JobRef]:
    refs = [JobRef("b1", f"job-{n}") for n in range(size)]
    specs = [
        JobSpec(
            ref=ref,
            image_uri=f"s3://fillpipe/in/{ref.job_id}.png",
            mask_uri=None,
            output_uri=f"s3://fillpipe/out/{ref.job_id}.jpeg",
            params=EditParams(prompt="a red mug", finetune_id="ft-1"),
        )
        for ref in refs
    ]
    rt.ledger.create_batch("b1", specs)
    return refs


def queued_submits(rt: Runtime) -> list[JobRef]:
    """The jobs of the submit messages in the broker's queue, oldest first."""
    refs = []
    for raw in reversed(rt.ledger.redis.lrange(QUEUE_SUBMIT, 0, -1)):  # LPUSHed
        args, _, _ = json.loads(base64.b64decode(json.loads(raw)["body"]))
        refs.append(JobRef(args[0], args[1]))
    return refs


def test_every_leased_and_staged_job_gets_a_submit_message(rt):
    refs = make_batch(rt, 6)

    kept = fill_slots()

    assert kept == []
    assert queued_submits(rt) == refs[: SLOTS + STAGED]
    assert [rt.ledger.get(ref).state for ref in refs[: SLOTS + STAGED]] == (
        [JobState.DISPATCHED] * SLOTS + [JobState.STAGED] * STAGED
    )


def test_kept_jobs_are_returned_instead_of_queued(rt):
    refs = make_batch(rt, 6)

    kept = fill_slots(keep=1, keep_staged=1)

    # The first leased job and the first staged one are the caller's to submit.
    assert kept == [(refs[0], 1), (refs[SLOTS], 1)]
    assert queued_submits(rt) == [refs[1], refs[SLOTS + 1]]
    assert rt.ledger.get(refs[SLOTS]).state is JobState.STAGED
    assert rt.ledger.staged() == refs[SLOTS : SLOTS + STAGED]


def test_nothing_is_kept_when_nothing_could_be_staged(rt):
    refs = make_batch(rt, SLOTS)

    assert fill_slots(keep_staged=1) == []
    assert queued_submits(rt) == refs
