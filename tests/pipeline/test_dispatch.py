"""Provider slots and the dispatcher: leases, fairness, priority, 429/402, reconcile.

Real Valkey and S3; the provider is scripted (`FakeProvider`), the clock is injected.
The dispatcher runs inside the ledger's scripts: a batch recorded, a slot given back or
a job put back in line fills the free slots at once, and each job leased a slot gets a
submit entry in the outbox (`take_submits` reads them, as a worker's relay would).
"""

import dataclasses

import pytest

from pipeline.collect import collect_job
from pipeline.ledger import Callback
from pipeline.models import JobRef
from pipeline.reconcile import sweep
from pipeline.states import JobState
from pipeline.submit import submit_job
from tests.pipeline.conftest import take_outbox, take_submits

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@pytest.fixture
def make_batch(rt, new_job):
    """Make a batch of `size` jobs (same inputs) named `name`; returns its refs."""
    template = rt.ledger.jobs.get(new_job()).spec
    rt.ledger.redis.flushdb()  # only the batches a test makes below

    def make(name: str, size: int, *, priority: int = 1) -> list[JobRef]:
        specs = [
            dataclasses.replace(template, ref=JobRef(name, f"{name}-{n:03d}")) for n in range(size)
        ]
        rt.ledger.batches.create(name, specs, priority=priority)
        return [spec.ref for spec in specs]

    return make


def slots(rt) -> int:
    return rt.settings.provider_slots


def finish(rt, ref: JobRef) -> None:
    """End a dispatched job as its collect would once the provider says it is done."""
    record = rt.ledger.jobs.get(ref)
    moved = rt.ledger.jobs.transition(
        ref, from_states=[record.state], to_state=JobState.FAILED, attempt=record.attempt
    )
    assert moved.applied and moved.released_slot


def test_a_new_batch_is_leased_every_free_slot_and_no_more(rt, make_batch):
    refs = make_batch("big", slots(rt) + 6)

    assert take_submits(rt) == [(ref, 1) for ref in refs[: slots(rt)]]  # manifest order
    assert len(rt.ledger.slots.leases()) == slots(rt)
    assert rt.ledger.slots.dispatch() == 0  # every slot taken
    finish(rt, refs[3])
    assert take_submits(rt) == [(refs[slots(rt)], 1)]  # refilled by the same script
    summary = rt.ledger.batches.summary("big")
    assert summary.counts[JobState.DISPATCHED] == slots(rt)
    assert summary.counts[JobState.QUEUED] == 5


def test_a_slot_is_given_back_exactly_once(rt, make_batch):
    (ref,) = make_batch("one", 1)
    [(_, attempt)] = take_submits(rt)
    assert rt.ledger.slots.release(ref, attempt + 1) is False  # another attempt's lease
    assert rt.ledger.slots.release(ref, attempt) is True
    assert rt.ledger.slots.release(ref, attempt) is False
    moved = rt.ledger.jobs.transition(
        ref, from_states=[JobState.DISPATCHED], to_state=JobState.FAILED
    )
    assert moved.applied and not moved.released_slot
    assert rt.ledger.slots.leases() == {}


def test_a_move_the_table_forbids_is_refused_before_it_reaches_redis(rt, make_batch):
    from pipeline.errors import IllegalMove

    (ref,) = make_batch("one", 1)
    with pytest.raises(IllegalMove, match="from queued to stored"):
        rt.ledger.jobs.transition(ref, from_states=[JobState.QUEUED], to_state=JobState.STORED)
    assert rt.ledger.jobs.get(ref).state is JobState.DISPATCHED


def test_a_small_batch_is_not_stuck_behind_a_large_one(rt, make_batch):
    large = make_batch("large", 500)
    take_submits(rt)
    make_batch("small", 5)
    order = []
    for ref in large[:10]:  # ten slots free up, one at a time
        finish(rt, ref)
        order += [ref.batch_id for ref, _ in take_submits(rt)]
    assert order.count("small") == 5  # every other freed slot went to the small batch
    assert order[:2] in (["small", "large"], ["large", "small"])


def test_priority_sets_each_batch_share_of_freed_slots(rt, make_batch):
    low = make_batch("low", 200)
    take_submits(rt)
    make_batch("high", 200, priority=4)
    order = []
    for ref in low[:20]:
        finish(rt, ref)
        order += [ref.batch_id for ref, _ in take_submits(rt)]
    assert order.count("high") == 16 and order.count("low") == 4


def test_cancelled_batches_and_a_paused_account_dispatch_nothing(rt, make_batch):
    rt.ledger.account.pause("provider account has no credits left")
    make_batch("paused", 3)
    assert take_submits(rt) == []
    assert rt.ledger.account.state().paused_reason == "provider account has no credits left"
    assert rt.ledger.batches.cancel("paused") == 3
    assert rt.ledger.account.resume() == "provider account has no credits left"
    assert rt.ledger.slots.dispatch() == 0  # the only batch is cancelled
    refs = make_batch("later", 3)
    assert [ref for ref, _ in take_submits(rt)] == refs


def test_429_puts_the_job_back_first_in_line_and_honours_retry_after(rt, make_batch, fake):
    refs = make_batch("busy", slots(rt) + 6)
    fake.submit_status, fake.submit_headers = 429, {"Retry-After": "7"}
    ref, attempt = take_submits(rt)[0]
    assert submit_job(rt, ref, attempt) is JobState.QUEUED
    assert ref not in rt.ledger.slots.leases()
    assert 6 < rt.ledger.account.cooldown_left_s() <= 7
    assert take_submits(rt) == []  # cooling down: the slot stays free
    rt.ledger.redis.delete(rt.ledger.keys.cooldown)  # the wait is over
    assert rt.ledger.slots.dispatch() == 1
    assert take_submits(rt) == [(refs[0], 2)]  # first in line again, a new attempt


def test_402_pauses_the_account_until_resumed(rt, make_batch, fake):
    make_batch("broke", slots(rt) + 3)
    fake.submit_status = 402
    (ref, attempt), *others = take_submits(rt)
    assert submit_job(rt, ref, attempt) is JobState.QUEUED
    assert "no credits" in rt.ledger.account.state().paused_reason
    fake.submit_status = 200
    for other, other_attempt in others:  # already dispatched: they may still go out
        submit_job(rt, other, other_attempt)
    assert take_submits(rt) == []
    rt.ledger.account.resume()
    rt.ledger.slots.dispatch()
    assert take_submits(rt) == [(ref, attempt + 1)]


def test_a_lost_submit_message_puts_the_job_back_in_line(rt, make_batch, clock):
    (ref,) = make_batch("lost", 1)
    [(_, attempt)] = take_submits(rt)  # ...and the submit message never arrives
    clock.now += rt.settings.deadlines.dispatch_late_s + 1
    assert sweep(rt).requeued == [ref]
    assert take_submits(rt) == [(ref, attempt + 1)]  # dispatched again at once
    assert submit_job(rt, ref, attempt) is None  # the late message changes nothing


def test_a_submit_that_died_midway_is_awaited_and_named_by_its_callback(
    rt, make_batch, fake, clock
):
    (ref,) = make_batch("midway", 1)
    [(_, attempt)] = take_submits(rt)
    # The worker took the job to `submitting`, POSTed, and died before recording it.
    rt.ledger.jobs.transition(
        ref,
        from_states=[JobState.DISPATCHED],
        to_state=JobState.SUBMITTING,
        attempt=attempt,
        late_at=clock.now + rt.settings.deadlines.submit_late_s,
    )
    clock.now += rt.settings.deadlines.submit_late_s + 1
    assert sweep(rt).ambiguous == [ref]
    assert ref in rt.ledger.slots.leases()  # the task may be running
    assert collect_job(rt, ref, attempt) is None  # nothing names the task yet
    callback = Callback(ref, attempt, final=True, task_id="task-9")
    assert rt.ledger.scripts.accept_callbacks([callback]) == ["collect"]
    assert take_outbox(rt, "collect") == [(ref, attempt)]
    assert collect_job(rt, ref, attempt) is JobState.STORED
    assert fake.polls == 1 and fake.submits == []
    assert rt.ledger.slots.leases() == {}


def test_a_late_job_is_polled_through_a_collect_in_the_outbox(rt, new_job, clock):
    ref = new_job()
    [(_, attempt)] = take_submits(rt)
    submit_job(rt, ref, attempt)  # ...and its webhook never comes
    clock.now += rt.settings.deadlines.callback_late_s + 1

    report = sweep(rt)

    assert report.polled == [ref]
    assert take_outbox(rt, "collect") == [(ref, attempt)]
    assert sweep(rt).polled == []  # re-filed past that collect
    assert collect_job(rt, ref, attempt) is JobState.STORED


def test_a_crashed_collect_is_collected_again(rt, new_job, fake, clock):
    ref = new_job()
    [(_, attempt)] = take_submits(rt)
    submit_job(rt, ref, attempt)
    rt.ledger.jobs.transition(  # a collect took the job, then its worker died
        ref,
        from_states=[JobState.AWAITING_RESULT],
        to_state=JobState.COLLECTING,
        attempt=attempt,
        late_at=clock.now + rt.settings.deadlines.collect_late_s,
    )
    clock.now += rt.settings.deadlines.collect_late_s + 1
    assert sweep(rt).polled == [ref]
    assert take_outbox(rt, "collect") == [(ref, attempt)]
    assert collect_job(rt, ref, attempt) is JobState.STORED


@pytest.mark.parametrize(
    ("policy", "state", "submitted_again"),
    [("fail", JobState.FAILED, []), ("resubmit", JobState.QUEUED, [2])],
)
def test_a_result_the_provider_lost_fails_or_is_resubmitted(
    rt, new_job, fake, policy, state, submitted_again
):
    rt = dataclasses.replace(rt, settings=dataclasses.replace(rt.settings, on_lost_result=policy))
    ref = new_job()
    [(_, attempt)] = take_submits(rt)
    submit_job(rt, ref, attempt)
    fake.status = "Task not found"
    assert collect_job(rt, ref, attempt) is state
    assert "no longer knows the task" in rt.ledger.jobs.get(ref).error
    assert [again for _, again in take_submits(rt)] == submitted_again
    assert rt.ledger.slots.leases() == ({ref: 2} if submitted_again else {})


def test_collect_frees_the_slot_before_it_downloads_and_fills_it(rt, make_batch, fake):
    refs = make_batch("wide", slots(rt) + 1)
    ref, attempt = take_submits(rt)[0]
    submit_job(rt, ref, attempt)
    fake.expired_downloads = 99  # every download fails, after the poll said Ready

    collect_job(rt, ref, attempt)

    assert fake.polls >= 1 and fake.downloads >= 1
    assert ref not in rt.ledger.slots.leases()
    assert take_submits(rt) == [(refs[-1], 1)]
