"""The callback recorder on a real Valkey: batching, answers, slots, the outbox."""

import asyncio

import pytest
import redis.asyncio

from pipeline.callbacks import CallbackReport
from pipeline.ledger.connection import async_redis_client
from pipeline.models import JobRef
from pipeline.provider import TaskStatus
from pipeline.recorder import CallbackOutcome, CallbackRecorder
from pipeline.signing import CallbackClaim
from pipeline.states import JobState
from tests.pipeline.conftest import take_outbox, take_submits

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

READY = CallbackReport(task_id="task-1", status=TaskStatus.READY)
RUNNING = CallbackReport(task_id="task-1", status=TaskStatus.PENDING)


@pytest.fixture
def recorder(rt, settings):
    """A recorder on the test's ledger, filling freed slots as the receiver's does."""
    return CallbackRecorder(
        lambda: async_redis_client(settings.redis_url), rt.ledger.scripts.context
    )


@pytest.fixture
def in_flight(rt, new_job):
    """Make `count` jobs submitted as attempt 1, each holding a provider slot."""

    def make(count: int) -> list[JobRef]:
        refs = [new_job() for _ in range(count)]
        for ref, attempt in take_submits(rt):
            assert rt.ledger.slots.take(ref, attempt) == "go"
            for source, target in [
                (JobState.DISPATCHED, JobState.SUBMITTING),
                (JobState.SUBMITTING, JobState.AWAITING_RESULT),
            ]:
                rt.ledger.jobs.transition(
                    ref, from_states=[source], to_state=target, attempt=attempt
                )
        assert set(rt.ledger.slots.leases()) == set(refs)
        return refs

    return make


def record_all(recorder, calls):
    """Run `recorder.record` for every (claim, report) at once, in one event loop."""

    async def run():
        try:
            return await asyncio.gather(
                *(recorder.record(claim, report) for claim, report in calls),
                return_exceptions=True,
            )
        finally:
            await recorder.aclose()

    return asyncio.run(run())


def script_runs(rt) -> int:
    """How many scripts the server has run so far (the recorder's round trips)."""
    return int(rt.ledger.redis.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0))


def test_concurrent_callbacks_share_one_round_trip(rt, recorder, in_flight):
    refs = in_flight(5)
    first, second, *others = refs
    calls = [
        (CallbackClaim(first, 1), READY),
        (CallbackClaim(first, 1), READY),  # a duplicate in the same batch
        (CallbackClaim(second, 1), RUNNING),
        (CallbackClaim(second, 2), READY),  # an attempt that does not exist
        (CallbackClaim(JobRef(first.batch_id, "nobody"), 1), READY),
        *((CallbackClaim(ref, 1), READY) for ref in others),
    ]
    runs_before = script_runs(rt)

    answers = record_all(recorder, calls)

    assert answers == [
        CallbackOutcome.COLLECT,
        CallbackOutcome.DUPLICATE,
        CallbackOutcome.PENDING,
        CallbackOutcome.STALE,
        CallbackOutcome.UNKNOWN,
        *[CallbackOutcome.COLLECT] * len(others),
    ]
    assert script_runs(rt) - runs_before == 1
    # Each first final callback queued its collect and gave its slot back.
    assert take_outbox(rt, "collect") == [(first, 1)] + [(ref, 1) for ref in others]
    assert set(rt.ledger.slots.leases()) == {second}
    assert rt.ledger.jobs.get(first).state is JobState.AWAITING_RESULT  # collect decides


def test_a_slot_a_callback_frees_goes_to_the_waiting_job_in_the_same_step(
    rt, settings, recorder, in_flight, new_job
):
    refs = in_flight(settings.accounts.default.slots)
    new_job(), new_job()  # every slot is in use: both are dispatched ahead
    (first, first_attempt), (second, second_attempt) = take_submits(rt)
    assert rt.ledger.slots.take(first, first_attempt) == "wait"  # its request is ready

    answers = record_all(recorder, [(CallbackClaim(refs[0], 1), READY)])

    assert answers == [CallbackOutcome.COLLECT]
    assert rt.ledger.slots.leases()[first] == first_attempt
    assert rt.ledger.slots.wait(first, first_attempt, timeout_s=1) is True  # woken
    assert not rt.ledger.slots.holds(second, second_attempt, "default")  # still preparing
    assert take_submits(rt) == []  # no job was queued to take its place


def test_freed_slots_stay_free_while_the_account_is_paused(
    rt, settings, recorder, in_flight, new_job
):
    (ref, *_) = in_flight(settings.accounts.default.slots)
    rt.ledger.account().pause("provider account has no credits left")
    waiting = new_job()

    assert record_all(recorder, [(CallbackClaim(ref, 1), READY)]) == [CallbackOutcome.COLLECT]

    assert take_submits(rt) == []
    assert rt.ledger.jobs.get(waiting).state is JobState.QUEUED
    assert ref not in rt.ledger.slots.leases()


def test_a_callback_whose_slot_was_given_back_already_fills_nothing(rt, recorder, in_flight):
    (ref,) = in_flight(1)
    rt.ledger.slots.release(ref, 1)  # as a collect that got there first does
    assert record_all(recorder, [(CallbackClaim(ref, 1), READY)]) == [CallbackOutcome.COLLECT]
    assert take_outbox(rt, "collect") == [(ref, 1)]
    assert take_submits(rt) == []


def test_callbacks_arriving_during_a_round_trip_go_in_the_next(rt, recorder, in_flight):
    refs = in_flight(6)
    runs_before = script_runs(rt)

    async def run():
        lone = asyncio.ensure_future(recorder.record(CallbackClaim(refs[0], 1), READY))
        await asyncio.sleep(0)  # the first batch (one callback) is on its way
        rest = [recorder.record(CallbackClaim(ref, 1), READY) for ref in refs[1:]]
        answers = await asyncio.gather(lone, *rest)
        await recorder.aclose()
        return answers

    assert asyncio.run(run()) == [CallbackOutcome.COLLECT] * 6
    assert script_runs(rt) - runs_before == 2
    assert take_outbox(rt, "collect") == [(ref, 1) for ref in refs]
    assert rt.ledger.slots.leases() == {}


def test_every_callback_of_a_failed_batch_gets_the_error(rt):
    dead = CallbackRecorder(
        lambda: redis.asyncio.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2),
        rt.ledger.scripts.context,
    )
    calls = [(CallbackClaim(JobRef("b", f"j{n}"), 1), READY) for n in range(3)]
    answers = record_all(dead, calls)
    assert all(isinstance(answer, redis.ConnectionError) for answer in answers)
    assert rt.ledger.outbox.waiting() == []


def test_each_event_loop_gets_its_own_connections(rt, recorder, in_flight):
    first, second = in_flight(2)

    async def one(ref):
        return await recorder.record(CallbackClaim(ref, 1), READY)

    assert asyncio.run(one(first)) is CallbackOutcome.COLLECT
    assert asyncio.run(one(second)) is CallbackOutcome.COLLECT  # a new loop, same recorder
    asyncio.run(recorder.aclose())
    assert take_outbox(rt, "collect") == [(first, 1), (second, 1)]
