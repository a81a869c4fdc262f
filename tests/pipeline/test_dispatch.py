"""Provider slots and the dispatcher: dispatching ahead, taking and handing over slots,
fairness, priority, 429/402, reconcile.

Real Valkey and S3; the provider is scripted (`FakeProvider`), the clock is injected.
The dispatcher runs inside the ledger's scripts: each job it hands to a submit task gets
a submit entry in the outbox (`take_submits` reads them, as a worker's relay would).
A submit task takes a slot once its job's request is ready (`ready` plays that part),
then moves the job to `submitting` as its POST begins (`begin`).
"""

import dataclasses
import threading

import pytest

from pipeline.collect import collect_job
from pipeline.errors import IllegalMove
from pipeline.ledger import Callback
from pipeline.ledger.slots import MAX_WAIT_S
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
    return rt.settings.accounts.default.slots


def ready(rt, dispatched: list[tuple[JobRef, int]]) -> list[str]:
    """Each dispatched job's request is ready: it takes a slot ('go') or waits ('wait')."""
    return [rt.ledger.slots.take(ref, attempt) for ref, attempt in dispatched]


def begin(rt, ref: JobRef, attempt: int) -> None:
    """As `submit_job` does just before its POST."""
    moved = rt.ledger.jobs.transition(
        ref,
        from_states=[JobState.DISPATCHED],
        to_state=JobState.SUBMITTING,
        attempt=attempt,
        late_at=rt.clock() + rt.settings.deadlines.submit_late_s,
    )
    assert moved.applied


def fill(rt) -> list[tuple[JobRef, int]]:
    """Every dispatched job takes a free slot and begins its POST; returns them."""
    dispatched = take_submits(rt)
    assert ready(rt, dispatched) == ["go"] * len(dispatched)
    for ref, attempt in dispatched:
        begin(rt, ref, attempt)
    return dispatched


def finish(rt, ref: JobRef) -> None:
    """End a job holding a slot, as its collect would once the provider says it is done."""
    record = rt.ledger.jobs.get(ref)
    moved = rt.ledger.jobs.transition(
        ref, from_states=[record.state], to_state=JobState.FAILED, attempt=record.attempt
    )
    assert moved.applied and moved.released_slot


def test_one_job_is_dispatched_per_free_slot_then_as_many_again_ahead(rt, make_batch):
    refs = make_batch("big", 3 * slots(rt))

    first = take_submits(rt)
    assert first == [(ref, 1) for ref in refs[: slots(rt)]]  # manifest order, no slot yet
    assert rt.ledger.slots.leases() == {}
    assert ready(rt, first) == ["go"] * slots(rt)
    assert set(rt.ledger.slots.leases()) == set(refs[: slots(rt)])
    for ref, attempt in first:
        begin(rt, ref, attempt)
    ahead = take_submits(rt)  # every slot in use: the next ones are prepared ahead
    assert ahead == [(ref, 1) for ref in refs[slots(rt) : 2 * slots(rt)]]
    assert ready(rt, ahead) == ["wait"] * slots(rt)
    assert rt.ledger.slots.dispatch() == 0  # no more
    summary = rt.ledger.batches.summary("big")
    assert summary.counts[JobState.SUBMITTING] == slots(rt)
    assert summary.counts[JobState.DISPATCHED] == slots(rt)
    assert summary.counts[JobState.QUEUED] == slots(rt)


def test_a_freed_slot_goes_to_the_oldest_waiting_job_and_wakes_its_submit(rt, make_batch):
    refs = make_batch("wide", 3 * slots(rt))
    fill(rt)
    ahead = take_submits(rt)
    ready(rt, ahead[1:])  # the first one is still preparing
    (first_waiting, attempt) = ahead[1]
    assert rt.ledger.slots.wait(first_waiting, attempt, timeout_s=0.05) is False

    finish(rt, refs[0])

    assert rt.ledger.slots.leases()[first_waiting] == attempt
    assert rt.ledger.slots.wait(first_waiting, attempt, timeout_s=1) is True
    assert rt.ledger.jobs.get(ahead[2][0]).state is JobState.DISPATCHED
    # One more job is dispatched to take the handed-over one's place in line.
    assert take_submits(rt) == [(refs[2 * slots(rt)], 1)]


def test_a_slot_is_given_back_exactly_once(rt, make_batch):
    (ref,) = make_batch("one", 1)
    [(_, attempt)] = fill(rt)
    assert rt.ledger.slots.release(ref, attempt + 1) is False  # another attempt's lease
    assert rt.ledger.slots.release(ref, attempt) is True
    assert rt.ledger.slots.release(ref, attempt) is False
    moved = rt.ledger.jobs.transition(
        ref, from_states=[JobState.SUBMITTING], to_state=JobState.FAILED
    )
    assert moved.applied and not moved.released_slot
    assert rt.ledger.slots.leases() == {}


def test_moves_the_table_forbids_are_refused_before_they_reach_redis(rt, make_batch):
    rt.ledger.account().pause("hold the batch in line")
    (ref,) = make_batch("one", 1)
    with pytest.raises(IllegalMove, match="from queued to stored"):
        rt.ledger.jobs.transition(ref, from_states=[JobState.QUEUED], to_state=JobState.STORED)
    with pytest.raises(IllegalMove, match="only the dispatcher"):
        rt.ledger.jobs.transition(ref, from_states=[JobState.QUEUED], to_state=JobState.DISPATCHED)
    assert rt.ledger.jobs.get(ref).state is JobState.QUEUED


def test_a_small_batch_is_not_stuck_behind_a_large_one(rt, make_batch):
    large = make_batch("large", 500)
    fill(rt)
    ready(rt, take_submits(rt))  # the jobs prepared ahead wait for slots
    make_batch("small", 5)
    order = []
    for ref in large[:10]:  # ten slots free up, one at a time
        finish(rt, ref)
        order += [ref.batch_id for ref, _ in take_submits(rt)]
    assert order.count("small") == 5  # every other job dispatched is the small batch's
    assert order[:2] in (["small", "large"], ["large", "small"])


def test_priority_sets_each_batch_share_of_the_jobs_dispatched(rt, make_batch):
    low = make_batch("low", 200)
    fill(rt)
    ready(rt, take_submits(rt))
    make_batch("high", 200, priority=4)
    order = []
    for ref in low[:20]:
        finish(rt, ref)
        order += [ref.batch_id for ref, _ in take_submits(rt)]
    assert order.count("high") == 16 and order.count("low") == 4


def test_cancelled_batches_and_a_paused_account_dispatch_nothing(rt, make_batch):
    rt.ledger.account().pause("provider account has no credits left")
    make_batch("paused", 3)
    assert take_submits(rt) == []
    assert rt.ledger.account().state().paused_reason == "provider account has no credits left"
    assert rt.ledger.batches.cancel("paused") == 3
    assert rt.ledger.account().resume() == "provider account has no credits left"
    assert rt.ledger.slots.dispatch() == 0  # the only batch is cancelled
    refs = make_batch("later", 3)
    assert [ref for ref, _ in take_submits(rt)] == refs


def test_a_paused_account_hands_out_no_slot(rt, make_batch):
    make_batch("wide", 2 * slots(rt))
    dispatched = take_submits(rt)
    rt.ledger.account().pause("provider account has no credits left")
    assert ready(rt, dispatched[:1]) == ["wait"]
    rt.ledger.account().resume()
    rt.ledger.slots.dispatch()
    assert list(rt.ledger.slots.leases()) == [dispatched[0][0]]


def test_429_puts_the_job_back_first_in_line_and_honours_retry_after(rt, make_batch, fake):
    refs = make_batch("busy", slots(rt) + 6)
    fake.submit_status, fake.submit_headers = 429, {"Retry-After": "7"}
    ref, attempt = take_submits(rt)[0]
    assert submit_job(rt, ref, attempt) is JobState.QUEUED
    assert ref not in rt.ledger.slots.leases()
    assert 6 < rt.ledger.account().cooldown_left_s() <= 7
    assert take_submits(rt) == []  # cooling down: nothing is dispatched
    rt.ledger.redis.delete(rt.ledger.keys.pool("default").cooldown)  # the wait is over
    assert rt.ledger.slots.dispatch() == 1
    assert take_submits(rt) == [(refs[0], 2)]  # first in line again, a new attempt


def test_402_pauses_the_account_until_resumed(rt, make_batch, fake):
    make_batch("broke", slots(rt) + 3)
    fake.submit_status = 402
    (ref, attempt), *others = take_submits(rt)
    assert submit_job(rt, ref, attempt) is JobState.QUEUED
    assert "no credits" in rt.ledger.account().state().paused_reason
    fake.submit_status = 200
    for other, other_attempt in others[:2]:  # no slot is handed out while paused
        assert submit_job(rt, other, other_attempt, stopping=lambda: True) is JobState.QUEUED
    assert take_submits(rt) == []
    rt.ledger.account().resume()
    rt.ledger.slots.dispatch()
    assert [ref for ref, _ in take_submits(rt)][:3] == [others[1][0], others[0][0], ref]


def test_a_waiting_submit_posts_the_moment_a_slot_is_handed_to_it(rt, make_batch, fake):
    refs = make_batch("wide", 2 * slots(rt))
    for ref, attempt in take_submits(rt):
        assert submit_job(rt, ref, attempt) is JobState.AWAITING_RESULT
    (ref, attempt), *_ = take_submits(rt)  # dispatched ahead: every slot is in use
    posted = len(fake.submits)
    with ThreadedSubmit(rt, ref, attempt) as submitting:
        wait_for_a_blocked_pop(rt)  # its request built, the task waits for a slot
        assert len(fake.submits) == posted
        rt.ledger.slots.release(refs[0], 1)  # the provider ended its task
        assert submitting.result() is JobState.AWAITING_RESULT
    assert len(fake.submits) == posted + 1
    assert rt.ledger.slots.leases()[ref] == attempt


@pytest.mark.parametrize("why", ["stopping", "paused", "waited too long"])
def test_a_waiting_submit_gives_its_job_back_first_in_line(rt, make_batch, fake, clock, why):
    make_batch("wide", 2 * slots(rt))
    fill(rt)
    (ref, attempt), *_ = take_submits(rt)
    stopping = threading.Event()
    with ThreadedSubmit(rt, ref, attempt, stopping=stopping.is_set) as submitting:
        wait_for_a_blocked_pop(rt)
        if why == "stopping":
            stopping.set()
        elif why == "paused":
            rt.ledger.account().pause("provider account has no credits left")
        else:
            clock.now += MAX_WAIT_S + 1
        assert submitting.result() is JobState.QUEUED

    assert fake.submits == []
    reason = {"stopping": "worker is stopping", "paused": "no credits", "waited too long": "600"}
    record = rt.ledger.jobs.get(ref)
    assert reason[why] in record.error
    if why == "paused":  # nothing is dispatched while paused: first in line
        assert record.state is JobState.QUEUED
        requeued = rt.ledger.keys.batch_requeued("wide", "default")
        assert rt.ledger.redis.lindex(requeued, 0) == ref.job_id
    else:  # first in line, and dispatched again at once to wait for the next slot
        assert (ref, attempt + 1) in take_submits(rt)


def test_a_stale_waiting_job_is_passed_over(rt, make_batch, clock):
    refs = make_batch("wide", 3 * slots(rt))
    fill(rt)
    ahead = take_submits(rt)
    ready(rt, ahead[:2])
    stale, _ = ahead[0]
    clock.now += MAX_WAIT_S + rt.settings.deadlines.dispatch_late_s + 1
    for ref in list(rt.ledger.slots.leases()) + [ref for ref, _ in ahead[1:]]:
        rt.ledger.jobs.unfile(ref)  # only the first one is late
    assert sweep(rt).requeued == [stale]  # its submit task is gone

    finish(rt, refs[0])

    assert rt.ledger.slots.holds(*ahead[1], "default")
    assert rt.ledger.jobs.get(stale).state is JobState.DISPATCHED  # again, a new attempt
    assert rt.ledger.jobs.get(stale).attempt == 2


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
    [(_, attempt)] = fill(rt)  # it took its slot, POSTed, and its worker died
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
    assert rt.ledger.slots.leases() == {}


def test_collect_frees_the_slot_before_it_downloads_and_hands_it_over(rt, make_batch, fake):
    make_batch("wide", 2 * slots(rt))
    (ref, attempt), *_ = fill(rt)
    (waiting, waiting_attempt), *_ = take_submits(rt)
    ready(rt, [(waiting, waiting_attempt)])
    rt.ledger.jobs.transition(  # as submit_job records the provider's task
        ref,
        from_states=[JobState.SUBMITTING],
        to_state=JobState.AWAITING_RESULT,
        fields={"polling_url": "https://api.us1.bfl.ai/v1/get_result?id=task-1"},
    )
    fake.expired_downloads = 99  # every download fails, after the poll said Ready

    collect_job(rt, ref, attempt)

    assert fake.polls >= 1 and fake.downloads >= 1
    assert ref not in rt.ledger.slots.leases()
    assert rt.ledger.slots.leases()[waiting] == waiting_attempt


class ThreadedSubmit:
    """`submit_job` run in a thread, as a worker's task thread would."""

    def __init__(self, rt, ref: JobRef, attempt: int, **options) -> None:
        self._outcome: list = []
        self._thread = threading.Thread(
            target=lambda: self._outcome.append(submit_job(rt, ref, attempt, **options))
        )

    def __enter__(self) -> "ThreadedSubmit":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._thread.join(timeout=30)

    def result(self) -> JobState | None:
        self._thread.join(timeout=10)
        assert not self._thread.is_alive()
        return self._outcome[0]


def wait_for_a_blocked_pop(rt, timeout_s: float = 10.0) -> None:
    stop = threading.Event()
    for _ in range(int(timeout_s / 0.01)):
        if any(client["cmd"] == "blpop" for client in rt.ledger.redis.client_list()):
            return
        stop.wait(0.01)
    raise AssertionError("no submit task waiting for a slot")
