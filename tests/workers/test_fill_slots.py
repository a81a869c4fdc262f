"""`fill_slots`: what it leases and stages, which submits it queues, and which job it
returns for its caller to submit itself (a leased job if it may take one, else, for a
caller that may take a staged job, the one job it stages: no job is staged for a
message to pick up)."""

import base64
import json

import pytest

from pipeline import jobs
from pipeline.models import EditParams, JobRef, JobSpec, JobState
from pipeline.runtime import Runtime
from workers import context
from workers.app import QUEUE_SUBMIT, create_celery_app
from workers.messages import BrokerOutbox
from workers.tasks import BACKLOG_MESSAGES, fill_slots

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


def test_every_leased_job_gets_a_submit_message_and_none_is_staged(rt):
    refs = make_batch(rt, 6)

    taken = fill_slots()

    assert taken is None
    assert queued_submits(rt) == refs[:SLOTS]
    assert [rt.ledger.get(ref).state for ref in refs[:SLOTS]] == [JobState.DISPATCHED] * SLOTS
    assert rt.ledger.staged() == []


def test_a_leased_job_is_taken_before_any_is_staged(rt):
    refs = make_batch(rt, 6)

    taken = fill_slots(take_leased=True, take_staged=True)

    # The first leased job is the caller's to submit; the other leased one gets a message.
    assert taken == (refs[0], 1)
    assert queued_submits(rt) == refs[1:SLOTS]
    assert rt.ledger.get(refs[0]).state is JobState.DISPATCHED
    assert rt.ledger.staged() == []


def test_with_every_slot_in_use_the_one_job_staged_is_taken(rt):
    refs = make_batch(rt, 6)
    jobs.dispatch(rt)  # every slot leased, no message sent

    taken = fill_slots(take_leased=True, take_staged=True)

    assert taken == (refs[SLOTS], 1)
    assert queued_submits(rt) == []
    assert rt.ledger.staged() == [refs[SLOTS]]
    assert rt.ledger.get(refs[SLOTS]).state is JobState.STAGED


def test_nothing_is_staged_while_submit_messages_wait(rt):
    refs = make_batch(rt, 6)
    fill_slots()  # every slot leased, their submit messages queued

    assert fill_slots(take_staged=True) is None
    assert rt.ledger.staged() == []

    # Worker processes took them; a dispatch message (same queue) does not hold it up.
    rt.ledger.redis.delete(QUEUE_SUBMIT)
    rt.ledger.redis.lpush(QUEUE_SUBMIT, BrokerOutbox(create_celery_app(rt.settings)).dispatch())
    assert fill_slots(take_staged=True) == (refs[SLOTS], 1)


def test_a_backlog_of_messages_stops_staging_without_being_read_through(rt):
    make_batch(rt, 6)
    jobs.dispatch(rt)
    dispatch_message = BrokerOutbox(create_celery_app(rt.settings)).dispatch()
    rt.ledger.redis.lpush(QUEUE_SUBMIT, *[dispatch_message] * BACKLOG_MESSAGES)

    assert fill_slots(take_staged=True) is None
    assert rt.ledger.staged() == []


def test_staging_stops_at_the_configured_depth(rt):
    refs = make_batch(rt, 6)
    jobs.dispatch(rt)

    taken = [fill_slots(take_staged=True) for _ in range(STAGED + 1)]

    assert taken == [(ref, 1) for ref in refs[SLOTS : SLOTS + STAGED]] + [None]
    assert rt.ledger.staged() == refs[SLOTS : SLOTS + STAGED]


def test_nothing_is_taken_when_nothing_could_be_staged(rt):
    refs = make_batch(rt, SLOTS)

    assert fill_slots(take_staged=True) is None
    assert queued_submits(rt) == refs
