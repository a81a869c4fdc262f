"""Callbacks off: submits ask for no webhook, and the poller polls every active task.

Real Valkey and S3; the provider is scripted (`FakeProvider`), the clock is injected.
A poller's claim queues a collect in the outbox (`take_outbox` reads them, as a relay
would); the test then runs each collect as a worker would.
"""

import threading

import pytest

from pipeline.collect import collect_job
from pipeline.ledger import Ledger
from pipeline.models import JobRef
from pipeline.polling import (
    CLAIM_LEASE_S,
    FAST_POLLS_FOR_S,
    FIRST_POLL_S,
    MAX_POLL_EVERY_S,
    POLL_EVERY_S,
    POLL_GROWTH,
    Poller,
    mode_line,
    poll_every_s,
)
from pipeline.reconcile import sweep
from pipeline.settings import Settings
from pipeline.states import JobState
from pipeline.submit import submit_job
from tests.pipeline.conftest import take_outbox
from tests.pipeline.fakes import PROVIDER_URL

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@pytest.fixture
def settings(valkey_url, s3_env) -> Settings:
    """The suite's settings without a public URL: callbacks are off."""
    return Settings.from_environ(
        {
            **s3_env,
            "FILLPIPE_REDIS_URL": valkey_url,
            "FILLPIPE_PROVIDER_URL": PROVIDER_URL,
            "FILLPIPE_PROVIDER_KEY": "test-provider-key",
            "FILLPIPE_SIGNING_KEY": "s" * 40,
        }
    )


def submitted(rt, new_job) -> JobRef:
    """A job dispatched and submitted (attempt 1), awaiting its result."""
    ref = new_job()
    rt.ledger.slots.dispatch()
    assert submit_job(rt, ref, 1) is JobState.AWAITING_RESULT
    return ref


def polls(rt) -> dict[str, float]:
    """The poll set: "<attempt>|<job key>" -> when it is due."""
    return dict(rt.ledger.redis.zrange(rt.ledger.keys.poll, 0, -1, withscores=True))


def entry(rt, ref: JobRef, attempt: int = 1) -> str:
    return f"{attempt}|{rt.ledger.keys.job(ref)}"


def collect_claimed(rt) -> list[JobState | None]:
    """Run every collect the pollers queued, as a worker would."""
    return [collect_job(rt, ref, attempt) for ref, attempt in take_outbox(rt, "collect")]


def test_mode_line_says_where_callbacks_come_or_that_tasks_are_polled(settings):
    assert mode_line(settings) == "callbacks off: polling each active task every ~1 s"
    on = Settings.from_environ(
        {
            "FILLPIPE_REDIS_URL": "redis://127.0.0.1:1",
            "FILLPIPE_PROVIDER_URL": PROVIDER_URL,
            "FILLPIPE_PROVIDER_KEY": "k",
            "FILLPIPE_SIGNING_KEY": "s" * 40,
            "FILLPIPE_PUBLIC_URL": "https://hooks.example.com/",
        }
    )
    assert mode_line(on) == "callbacks via https://hooks.example.com"


def test_submit_asks_for_no_webhook_and_files_the_first_poll(rt, new_job, fake, clock):
    assert not rt.settings.callbacks
    ref = submitted(rt, new_job)
    body = fake.submits[0]
    assert "webhook_url" not in body and "webhook_secret" not in body
    assert body["finetune_id"] == "ft-1"
    assert polls(rt) == {entry(rt, ref): clock.now + FIRST_POLL_S}
    # The sweep's deadline stays the one for a task nobody polls.
    late_at = rt.ledger.redis.zscore(rt.ledger.keys.awaiting, rt.ledger.keys.job(ref))
    assert late_at == clock.now + rt.settings.deadlines.callback_late_s


def test_polls_are_claimed_once_across_pollers(rt, new_job, fake, settings, clock):
    refs = [submitted(rt, new_job) for _ in range(6)]
    other = Ledger.from_settings(settings, clock=clock)  # another worker's poller
    pollers = [Poller(rt.ledger, clock=clock), Poller(other, clock=clock)]
    assert [poller.poll_once().jobs for poller in pollers] == [[], []]  # not due yet
    clock.now += FIRST_POLL_S
    start = threading.Barrier(len(pollers))
    claims: list[list[tuple[JobRef, int]]] = [[] for _ in pollers]

    def claim(index: int) -> None:
        start.wait()
        claims[index] = pollers[index].poll_once().jobs

    threads = [threading.Thread(target=claim, args=(i,)) for i in range(len(pollers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    other.close()
    claimed = claims[0] + claims[1]
    assert sorted(claimed) == sorted((ref, 1) for ref in refs)  # each once, by one poller
    assert sorted(take_outbox(rt, "collect")) == sorted(claimed)  # one collect each
    assert set(polls(rt).values()) == {clock.now + CLAIM_LEASE_S}  # filed past the lease
    assert pollers[0].poll_once().jobs == []  # nothing due until the lease ends


def test_a_running_task_is_polled_again_ever_more_slowly(rt, new_job, fake, clock):
    fake.status = "Pending"
    ref = submitted(rt, new_job)
    submitted_at = clock.now
    poller = Poller(rt.ledger, clock=clock)
    waits = []
    while clock.now - submitted_at < FAST_POLLS_FOR_S + 60:
        clock.now = polls(rt)[entry(rt, ref)]
        assert poller.poll_once().jobs == [(ref, 1)]
        assert collect_claimed(rt) == [JobState.AWAITING_RESULT]
        waits.append(polls(rt)[entry(rt, ref)] - clock.now)
    assert fake.polls == len(waits)  # one poll per claim
    assert rt.ledger.jobs.get(ref).state is JobState.AWAITING_RESULT
    assert ref in rt.ledger.slots.leases()  # a running task keeps its slot
    fast = [wait for wait in waits if wait == POLL_EVERY_S]
    assert len(fast) == pytest.approx(FAST_POLLS_FOR_S / POLL_EVERY_S, abs=1)
    growing = waits[len(fast) : waits.index(MAX_POLL_EVERY_S)]
    assert len(growing) >= 4
    for before, after in zip([POLL_EVERY_S, *growing], growing, strict=False):
        assert after == pytest.approx(before * POLL_GROWTH)
    assert set(waits[waits.index(MAX_POLL_EVERY_S) :]) == {MAX_POLL_EVERY_S}


def test_poll_waits_by_task_age():
    assert poll_every_s(0) == poll_every_s(FAST_POLLS_FOR_S) == POLL_EVERY_S
    assert poll_every_s(FAST_POLLS_FOR_S + 1) == POLL_EVERY_S * POLL_GROWTH
    assert poll_every_s(3600) == MAX_POLL_EVERY_S


def test_a_finished_task_frees_its_slot_and_is_stored(rt, new_job, fake, clock):
    ref = submitted(rt, new_job)
    poller = Poller(rt.ledger, clock=clock)
    clock.now += FIRST_POLL_S
    assert poller.poll_once().jobs == [(ref, 1)]
    assert collect_claimed(rt) == [JobState.STORED]
    assert rt.ledger.jobs.get(ref).state is JobState.STORED
    assert rt.ledger.slots.leases() == {}
    assert fake.polls == 1 and fake.downloads == 1
    clock.now += CLAIM_LEASE_S
    claim = poller.poll_once()  # the ended job's entry is dropped, not polled
    assert (claim.jobs, claim.next_due_at, polls(rt)) == ([], None, {})
    assert fake.polls == 1


def test_the_sweep_polls_a_task_no_poller_took_and_hands_it_back(rt, new_job, fake, clock):
    fake.status = "Pending"
    ref = submitted(rt, new_job)
    rt.ledger.redis.delete(rt.ledger.keys.poll)  # as if every poller had stopped
    clock.now += rt.settings.deadlines.callback_late_s + 1
    assert ref in sweep(rt).polled
    assert collect_claimed(rt) == [JobState.AWAITING_RESULT]
    assert polls(rt) == {entry(rt, ref): clock.now + MAX_POLL_EVERY_S}  # old: polled slowly


def test_the_poller_thread_claims_due_polls_until_stopped(rt, new_job, fake, clock):
    ref = submitted(rt, new_job)
    clock.now += FIRST_POLL_S
    stop = threading.Event()
    thread = threading.Thread(target=Poller(rt.ledger, clock=clock).run, args=(stop,))
    thread.start()
    try:
        for _ in range(100):
            if any(queued.task == "collect" for queued in rt.ledger.outbox.waiting()):
                break
            stop.wait(0.05)
    finally:
        stop.set()
        thread.join(timeout=5)
    assert not thread.is_alive()
    assert take_outbox(rt, "collect") == [(ref, 1)]
