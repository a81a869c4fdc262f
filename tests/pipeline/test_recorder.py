"""The callback recorder on a real Valkey: batching, answers, slots, follow-up messages."""

import asyncio

import pytest
import redis.asyncio

from pipeline import jobs
from pipeline.callbacks import CallbackReport
from pipeline.models import JobRef, JobState
from pipeline.provider import TaskStatus
from pipeline.recorder import CallbackOutcome, CallbackRecorder
from pipeline.signing import CallbackClaim

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

READY = CallbackReport(task_id="task-1", status=TaskStatus.READY)
RUNNING = CallbackReport(task_id="task-1", status=TaskStatus.PENDING)


@pytest.fixture
def in_flight(rt, new_job):
    """Make `count` jobs submitted as attempt 1, each holding a provider slot."""

    def make(count: int) -> list[JobRef]:
        refs = [new_job() for _ in range(count)]
        for ref, attempt in jobs.dispatch(rt):
            for source, target in [
                (JobState.DISPATCHED, JobState.SUBMITTING),
                (JobState.SUBMITTING, JobState.AWAITING_RESULT),
            ]:
                rt.ledger.transition(ref, from_states=[source], to_state=target, attempt=attempt)
        assert set(rt.ledger.leases()) == set(refs)
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


def test_concurrent_callbacks_share_one_round_trip(rt, settings, outbox, in_flight):
    refs = in_flight(5)
    recorder = CallbackRecorder.from_url(settings.redis_url, outbox, clock=rt.clock)
    first, second, *others = refs
    calls = [
        (CallbackClaim(first, 1), READY),
        (CallbackClaim(first, 1), READY),  # a duplicate in the same batch
        (CallbackClaim(second, 1), RUNNING),
        (CallbackClaim(second, 2), READY),  # an attempt that does not exist
        (CallbackClaim(JobRef(first.batch_id, "nobody"), 1), READY),
        *((CallbackClaim(ref, 1), READY) for ref in others),
    ]
    answers = record_all(recorder, calls)
    assert answers == [
        CallbackOutcome.COLLECT,
        CallbackOutcome.DUPLICATE,
        CallbackOutcome.PENDING,
        CallbackOutcome.STALE,
        CallbackOutcome.UNKNOWN,
        *[CallbackOutcome.COLLECT] * len(others),
    ]
    assert recorder.round_trips == 1
    # Each first final callback queued its collect and gave its slot back; one dispatch
    # message asks a worker to fill them.
    assert outbox.read() == [(first, 1)] + [(ref, 1) for ref in others]
    assert set(rt.ledger.leases()) == {second}
    assert outbox.dispatches() == 1
    assert rt.ledger.get(first).state is JobState.AWAITING_RESULT  # collect decides


def test_a_callback_that_frees_no_slot_queues_no_dispatch(rt, settings, outbox, in_flight):
    (ref,) = in_flight(1)
    rt.ledger.release_slot(ref, 1)  # as a collect that got there first does
    recorder = CallbackRecorder.from_url(settings.redis_url, outbox, clock=rt.clock)
    assert record_all(recorder, [(CallbackClaim(ref, 1), READY)]) == [CallbackOutcome.COLLECT]
    assert outbox.read() == [(ref, 1)]
    assert outbox.dispatches() == 0


def test_callbacks_arriving_during_a_round_trip_go_in_the_next(rt, settings, outbox, in_flight):
    refs = in_flight(6)
    recorder = CallbackRecorder.from_url(settings.redis_url, outbox, clock=rt.clock)

    async def run():
        lone = asyncio.ensure_future(recorder.record(CallbackClaim(refs[0], 1), READY))
        await asyncio.sleep(0)  # the first batch (one callback) is on its way
        rest = [recorder.record(CallbackClaim(ref, 1), READY) for ref in refs[1:]]
        answers = await asyncio.gather(lone, *rest)
        await recorder.aclose()
        return answers

    assert asyncio.run(run()) == [CallbackOutcome.COLLECT] * 6
    assert recorder.round_trips == 2
    assert outbox.read() == [(ref, 1) for ref in refs]
    assert rt.ledger.leases() == {}


def test_every_callback_of_a_failed_batch_gets_the_error(outbox):
    dead = CallbackRecorder(
        lambda: redis.asyncio.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2),
        outbox,
    )
    calls = [(CallbackClaim(JobRef("b", f"j{n}"), 1), READY) for n in range(3)]
    answers = record_all(dead, calls)
    assert all(isinstance(answer, redis.ConnectionError) for answer in answers)
    assert outbox.read() == []


def test_each_event_loop_gets_its_own_connections(rt, settings, outbox, in_flight):
    first, second = in_flight(2)
    recorder = CallbackRecorder.from_url(settings.redis_url, outbox, clock=rt.clock)

    async def one(ref):
        return await recorder.record(CallbackClaim(ref, 1), READY)

    assert asyncio.run(one(first)) is CallbackOutcome.COLLECT
    assert asyncio.run(one(second)) is CallbackOutcome.COLLECT  # a new loop, same recorder
    asyncio.run(recorder.aclose())
    assert outbox.read() == [(first, 1), (second, 1)]


def test_a_slot_a_callback_frees_goes_to_the_oldest_staged_job_at_once(
    rt, settings, outbox, in_flight, new_job
):
    refs = in_flight(settings.provider_slots)
    waiting = [new_job() for _ in range(3)]
    assert [ref for ref, _ in jobs.stage(rt)] == waiting[:2]
    recorder = CallbackRecorder.from_url(
        settings.redis_url, outbox, clock=rt.clock, handoff_late_s=60
    )
    calls = [(CallbackClaim(ref, 1), READY) for ref in refs[:1]]

    assert record_all(recorder, calls) == [CallbackOutcome.COLLECT]

    assert rt.ledger.get(waiting[0]).state is JobState.DISPATCHED
    assert rt.ledger.leases()[waiting[0]] == 1
    assert rt.ledger.wait_for_slot(waiting[0], 1, timeout_s=1) is True
    assert rt.ledger.staged() == [waiting[1]]
    assert outbox.dispatches() == 1  # a worker leases what is left


@pytest.mark.parametrize("why", ["no hand-off asked for", "paused"])
def test_freed_slots_wait_for_the_dispatcher_without_hand_off_or_while_paused(
    rt, settings, outbox, in_flight, new_job, why
):
    (ref, *_) = in_flight(settings.provider_slots)
    staged = new_job()
    jobs.stage(rt)
    handoff = None if why == "no hand-off asked for" else 60
    if why == "paused":
        rt.ledger.pause("provider account has no credits left")
    recorder = CallbackRecorder.from_url(
        settings.redis_url, outbox, clock=rt.clock, handoff_late_s=handoff
    )

    assert record_all(recorder, [(CallbackClaim(ref, 1), READY)]) == [CallbackOutcome.COLLECT]

    assert rt.ledger.get(staged).state is JobState.STAGED
    assert ref not in rt.ledger.leases() and staged not in rt.ledger.leases()
