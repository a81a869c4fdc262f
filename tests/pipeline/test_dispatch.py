"""Provider slots and the dispatcher: leases, fairness, priority, 429/402, reconcile.

Real Valkey and S3; the provider is scripted (`FakeProvider`), the clock is injected.
"""

import dataclasses
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from pipeline import jobs
from pipeline.models import JobRef, JobState

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@pytest.fixture
def make_batch(rt, new_job):
    """Make a batch of `size` jobs (same inputs) named `name`; returns its refs."""
    template = rt.ledger.get(new_job()).spec
    rt.ledger.redis.flushdb()  # only the batches a test makes below

    def make(name: str, size: int, *, priority: int = 1) -> list[JobRef]:
        specs = [
            dataclasses.replace(template, ref=JobRef(name, f"{name}-{n:03d}")) for n in range(size)
        ]
        rt.ledger.create_batch(name, specs, priority=priority)
        return [spec.ref for spec in specs]

    return make


def slots(rt) -> int:
    return rt.settings.provider_slots


def finish(rt, ref: JobRef) -> None:
    """End a dispatched job as its collect would once the provider says it is done."""
    record = rt.ledger.get(ref)
    moved = rt.ledger.transition(
        ref, from_states=[record.state], to_state=JobState.STORED, attempt=record.attempt
    )
    assert moved.applied and moved.released_slot


def test_dispatch_leases_at_most_the_slot_count(rt, make_batch):
    refs = make_batch("big", slots(rt) + 6)
    first = jobs.dispatch(rt)
    assert [ref for ref, _ in first] == refs[: slots(rt)]  # manifest order
    assert all(attempt == 1 for _, attempt in first)
    assert len(rt.ledger.leases()) == slots(rt)
    assert jobs.dispatch(rt) == []  # every slot taken
    finish(rt, refs[3])
    assert [ref for ref, _ in jobs.dispatch(rt)] == [refs[slots(rt)]]
    summary = rt.ledger.summary("big")
    assert summary.counts[JobState.DISPATCHED] == slots(rt)
    assert summary.counts[JobState.QUEUED] == 5


def test_a_slot_is_given_back_exactly_once(rt, make_batch):
    (ref,) = make_batch("one", 1)
    [(_, attempt)] = jobs.dispatch(rt)
    assert rt.ledger.release_slot(ref, attempt + 1) is False  # another attempt's lease
    assert rt.ledger.release_slot(ref, attempt) is True
    assert rt.ledger.release_slot(ref, attempt) is False
    moved = rt.ledger.transition(ref, from_states=[JobState.DISPATCHED], to_state=JobState.FAILED)
    assert moved.applied and not moved.released_slot
    assert rt.ledger.leases() == {}


def test_a_small_batch_is_not_stuck_behind_a_large_one(rt, make_batch):
    large = make_batch("large", 500)
    jobs.dispatch(rt)
    make_batch("small", 5)
    order = []
    for ref in large[:10]:  # ten slots free up, one at a time
        finish(rt, ref)
        order += [ref.batch_id for ref, _ in jobs.dispatch(rt)]
    assert order.count("small") == 5  # every other freed slot went to the small batch
    assert order[:2] in (["small", "large"], ["large", "small"])


def test_priority_sets_each_batch_share_of_freed_slots(rt, make_batch):
    low = make_batch("low", 200)
    jobs.dispatch(rt)
    make_batch("high", 200, priority=4)
    order = []
    for ref in low[:20]:
        finish(rt, ref)
        order += [ref.batch_id for ref, _ in jobs.dispatch(rt)]
    assert order.count("high") == 16 and order.count("low") == 4


def test_cancelled_batches_and_a_paused_account_dispatch_nothing(rt, make_batch):
    make_batch("cancelled", 3)
    rt.ledger.cancel("cancelled")
    assert jobs.dispatch(rt) == []
    make_batch("paused", 3)
    rt.ledger.pause("provider account has no credits left")
    assert jobs.dispatch(rt) == []
    assert rt.ledger.account().paused_reason == "provider account has no credits left"
    assert rt.ledger.resume() is True
    assert len(jobs.dispatch(rt)) == 3


def test_429_puts_the_job_back_first_in_line_and_honours_retry_after(rt, make_batch, fake):
    refs = make_batch("busy", 30)
    fake.submit_status, fake.submit_headers = 429, {"Retry-After": "7"}
    dispatched = jobs.dispatch(rt)
    ref, attempt = dispatched[0]
    assert jobs.submit_job(rt, ref, attempt) is JobState.QUEUED
    assert ref not in rt.ledger.leases()
    assert 6 < rt.ledger.cooldown_left_s() <= 7
    assert jobs.dispatch(rt) == []  # cooling down
    rt.ledger.redis.delete("fp:cooldown")  # the wait is over
    assert jobs.dispatch(rt) == [(refs[0], 2)]  # first in line again, a new attempt


def test_402_pauses_the_account_until_resumed(rt, make_batch, fake):
    make_batch("broke", 3)
    fake.submit_status = 402
    (ref, attempt), *others = jobs.dispatch(rt)
    assert jobs.submit_job(rt, ref, attempt) is JobState.QUEUED
    assert "no credits" in rt.ledger.account().paused_reason
    fake.submit_status = 200
    for other, other_attempt in others:  # already dispatched: they may still go out
        jobs.submit_job(rt, other, other_attempt)
    assert jobs.dispatch(rt) == []
    rt.ledger.resume()
    [(again, _)] = jobs.dispatch(rt)
    assert again == ref


def test_a_lost_submit_message_puts_the_job_back_in_line(rt, make_batch, clock):
    (ref,) = make_batch("lost", 1)
    [(_, attempt)] = jobs.dispatch(rt)  # ...and the submit message never arrives
    clock.now += rt.settings.deadlines.dispatch_late_s + 1
    assert jobs.plan_reconcile(rt).requeued == [ref]
    assert rt.ledger.leases() == {}
    assert jobs.submit_job(rt, ref, attempt) is None  # the late message changes nothing
    assert jobs.dispatch(rt) == [(ref, attempt + 1)]


def test_a_submit_that_died_midway_is_awaited_and_named_by_its_callback(
    rt, make_batch, fake, clock
):
    (ref,) = make_batch("midway", 1)
    [(_, attempt)] = jobs.dispatch(rt)
    # The worker took the job to `submitting`, POSTed, and died before recording it.
    rt.ledger.transition(
        ref, from_states=[JobState.DISPATCHED], to_state=JobState.SUBMITTING, attempt=attempt
    )
    clock.now += rt.settings.deadlines.submit_late_s + 1
    rt.ledger.transition(  # as submit_job files it
        ref, from_states=[JobState.SUBMITTING], to_state=JobState.SUBMITTING, late_at=clock.now - 1
    )
    assert jobs.plan_reconcile(rt).ambiguous == [ref]
    assert ref in rt.ledger.leases()  # the task may be running
    assert jobs.collect_job(rt, ref, attempt) is None  # nothing names the task yet
    assert rt.ledger.accept_callback(ref, attempt, final=True, task_id="task-9") == "collect"
    assert jobs.collect_job(rt, ref, attempt) is JobState.STORED
    assert fake.polls == 1 and fake.submits == []
    assert rt.ledger.leases() == {}


def test_a_crashed_collect_is_collected_again(rt, new_job, fake, clock):
    ref = new_job()
    [(_, attempt)] = jobs.dispatch(rt)
    jobs.submit_job(rt, ref, attempt)
    rt.ledger.transition(  # a collect took the job, then its worker died
        ref,
        from_states=[JobState.AWAITING_RESULT],
        to_state=JobState.COLLECTING,
        attempt=attempt,
        late_at=clock.now + rt.settings.deadlines.collect_late_s,
    )
    clock.now += rt.settings.deadlines.collect_late_s + 1
    assert jobs.plan_reconcile(rt).collect == [(ref, attempt)]
    assert jobs.collect_job(rt, ref, attempt) is JobState.STORED


@pytest.mark.parametrize(
    ("policy", "state", "slot_again"),
    [("fail", JobState.FAILED, False), ("resubmit", JobState.QUEUED, True)],
)
def test_a_result_the_provider_lost_fails_or_is_resubmitted(
    rt, new_job, fake, policy, state, slot_again
):
    rt = dataclasses.replace(rt, settings=dataclasses.replace(rt.settings, on_lost_result=policy))
    ref = new_job()
    [(_, attempt)] = jobs.dispatch(rt)
    jobs.submit_job(rt, ref, attempt)
    fake.status = "Task not found"
    assert jobs.collect_job(rt, ref, attempt) is state
    assert "no longer knows the task" in rt.ledger.get(ref).error
    assert rt.ledger.leases() == {}
    assert bool(jobs.dispatch(rt)) is slot_again


def test_collect_frees_the_slot_before_it_downloads_and_stores(rt, new_job, fake):
    ref = new_job()
    [(_, attempt)] = jobs.dispatch(rt)
    jobs.submit_job(rt, ref, attempt)
    seen = []

    def slot_freed():
        seen.append((dict(rt.ledger.leases()), fake.downloads, rt.ledger.get(ref).state))

    assert jobs.collect_job(rt, ref, attempt, slot_freed=slot_freed) is JobState.STORED
    assert seen == [({}, 0, JobState.COLLECTING)]
    assert jobs.collect_job(rt, ref, attempt, slot_freed=slot_freed) is None
    assert len(seen) == 1  # released once, announced once


# -- staged submits --------------------------------------------------------------------


def fill_and_stage(rt, make_batch, size: int) -> tuple[list[JobRef], list[tuple[JobRef, int]]]:
    """A batch of `size` jobs with every slot leased; returns its refs and the staged."""
    refs = make_batch("wide", size)
    assert len(jobs.dispatch(rt)) == slots(rt)
    return refs, jobs.stage(rt)


def test_jobs_are_staged_only_once_every_slot_is_in_use(rt, make_batch):
    refs = make_batch("wide", slots(rt) + 5)
    leased = rt.ledger.dispatch(capacity=slots(rt) - 1, deadline_s=60)
    assert jobs.stage(rt) == []  # a slot is free: it is the dispatcher's to lease
    leased += jobs.dispatch(rt)
    assert [ref for ref, _ in leased] == refs[: slots(rt)]

    staged = jobs.stage(rt)

    depth = rt.settings.staged_submits
    assert staged == [(ref, 1) for ref in refs[slots(rt) : slots(rt) + depth]]
    assert rt.ledger.staged() == [ref for ref, _ in staged]
    assert jobs.stage(rt) == []  # as deep as the setting allows
    summary = rt.ledger.summary("wide")
    assert summary.counts[JobState.STAGED] == depth
    assert summary.counts[JobState.QUEUED] == 5 - depth
    assert len(rt.ledger.leases()) == slots(rt)  # staging takes no slot


def test_a_caller_may_stage_fewer_jobs_than_the_depth_allows(rt, make_batch):
    refs = make_batch("wide", slots(rt) + 5)
    jobs.dispatch(rt)
    depth = rt.settings.staged_submits

    staged = [jobs.stage(rt, max_new=1) for _ in range(depth + 1)]

    assert staged == [[(ref, 1)] for ref in refs[slots(rt) : slots(rt) + depth]] + [[]]
    assert jobs.stage(rt, max_new=0) == []


def test_a_freed_slot_goes_to_the_oldest_staged_job_and_wakes_its_submit(rt, make_batch):
    refs, staged = fill_and_stage(rt, make_batch, slots(rt) + 4)
    (first, first_attempt), (second, _) = staged
    assert rt.ledger.wait_for_slot(first, first_attempt, timeout_s=0.05) is False

    finish(rt, refs[0])
    assert jobs.dispatch(rt) == []  # the slot went to a staged job, not a queued one

    assert rt.ledger.leases()[first] == first_attempt
    assert rt.ledger.get(first).state is JobState.DISPATCHED
    assert rt.ledger.wait_for_slot(first, first_attempt, timeout_s=1) is True
    assert rt.ledger.get(second).state is JobState.STAGED
    assert rt.ledger.staged() == [second]
    assert jobs.stage(rt) == [(refs[slots(rt) + 2], 1)]  # topped up, in manifest order


def test_a_staged_submit_waits_for_its_slot_then_posts(rt, make_batch, fake):
    refs, [(ref, attempt), _] = fill_and_stage(rt, make_batch, slots(rt) + 2)
    with ThreadPoolExecutor(1) as pool:
        submitted = pool.submit(jobs.submit_job, rt, ref, attempt)
        wait_for_a_blocked_pop(rt)  # its request built, the task waits for a slot
        assert fake.submits == []
        finish(rt, refs[0])
        jobs.dispatch(rt)  # hands the slot over

        assert submitted.result(timeout=10) is JobState.AWAITING_RESULT

    assert len(fake.submits) == 1
    assert rt.ledger.leases()[ref] == attempt
    # Which way each job reached the provider, for the makespan bench's figures.
    assert submitted_via(rt, ref) == "staged"
    assert jobs.submit_job(rt, refs[1], 1) is JobState.AWAITING_RESULT  # leased at once
    assert submitted_via(rt, refs[1]) == "dispatch"


def wait_for_a_blocked_pop(rt, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not any(client["cmd"] == "blpop" for client in rt.ledger.redis.client_list()):
        assert time.monotonic() < deadline, "no submit task waiting for a slot"
        time.sleep(0.01)


def submitted_via(rt, ref: JobRef) -> str | None:
    return rt.ledger.redis.hget(f"fp:job:{ref.batch_id}:{ref.job_id}", "submitted_via")


def test_a_staged_submit_that_finds_no_slot_goes_back_first_in_line(rt, make_batch, fake):
    deadlines = dataclasses.replace(rt.settings.deadlines, dispatch_late_s=2.0)
    rt = dataclasses.replace(rt, settings=dataclasses.replace(rt.settings, deadlines=deadlines))
    _, [(ref, attempt), _] = fill_and_stage(rt, make_batch, slots(rt) + 3)

    assert jobs.submit_job(rt, ref, attempt) is JobState.QUEUED  # after ~1 s (half the deadline)

    assert fake.submits == []
    assert "no provider slot came free within 1 s" in rt.ledger.get(ref).error
    assert ref not in rt.ledger.staged()
    assert jobs.stage(rt)[0] == (ref, attempt + 1)  # first in line again


def test_staged_jobs_that_end_early_leave_the_line_of_staged_jobs(rt, make_batch, fake):
    refs, [(bad, bad_attempt), (kept, _)] = fill_and_stage(rt, make_batch, slots(rt) + 2)
    rt.storage.client.delete_object(  # every job of the batch shares these inputs
        Bucket=rt.settings.bucket,
        Key=rt.ledger.get(bad).spec.mask_uri.split("/", 3)[3],
    )
    assert jobs.submit_job(rt, bad, bad_attempt) is JobState.INVALID_INPUT
    assert rt.ledger.staged() == [kept]
    finish(rt, refs[0])
    jobs.dispatch(rt)
    assert rt.ledger.get(kept).state is JobState.DISPATCHED
    assert fake.submits == []


def test_a_staged_job_whose_submit_task_is_gone_is_put_back_by_reconcile(rt, make_batch, clock):
    _, [(ref, attempt), (other, _)] = fill_and_stage(rt, make_batch, slots(rt) + 2)
    clock.now += rt.settings.deadlines.dispatch_late_s + 1
    rt.ledger.transition(  # keep the leased jobs off the sweep: only the staged are late
        other, from_states=[JobState.STAGED], to_state=JobState.STAGED, late_at=clock.now + 60
    )
    for leased in rt.ledger.leases():
        rt.ledger.unfile(leased)

    assert jobs.plan_reconcile(rt).requeued == [ref]

    assert rt.ledger.get(ref).state is JobState.QUEUED
    assert rt.ledger.staged() == [other]
    assert jobs.submit_job(rt, ref, attempt) is None  # its late message changes nothing


def test_nothing_is_staged_or_handed_over_while_the_account_is_paused(rt, make_batch):
    refs, [(ref, _), _] = fill_and_stage(rt, make_batch, slots(rt) + 4)
    rt.ledger.pause("provider account has no credits left")
    finish(rt, refs[0])
    assert jobs.dispatch(rt) == [] and jobs.stage(rt) == []
    assert rt.ledger.get(ref).state is JobState.STAGED
    rt.ledger.resume()
    assert jobs.dispatch(rt) == []
    assert rt.ledger.get(ref).state is JobState.DISPATCHED


def test_staging_can_be_turned_off(rt, make_batch):
    rt = dataclasses.replace(rt, settings=dataclasses.replace(rt.settings, staged_submits=0))
    make_batch("wide", slots(rt) + 2)
    jobs.dispatch(rt)
    assert jobs.stage(rt) == []
