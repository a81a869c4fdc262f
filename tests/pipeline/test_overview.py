"""What the dashboard reads, on a real Valkey: pages of jobs, the failed list, pace and ETA."""

from __future__ import annotations

import uuid

import pytest

from pipeline.ledger import Ledger, PoolLimits, redis_client
from pipeline.overview import (
    THROUGHPUT_WINDOW_S,
    account_overview,
    batch_list,
    batch_progress,
    job_page,
)
from pipeline.states import JobState
from tests.ledger_jobs import end_dispatched, make_batch

pytestmark = pytest.mark.timeout(30)

SLOTS = 4


@pytest.fixture
def ledger(valkey_url, clock):
    own = Ledger(
        redis_client(valkey_url),
        pools={"default": PoolLimits(SLOTS)},
        clock=clock,
        prefix=f"overview-{uuid.uuid4().hex[:12]}:",
    )
    yield own
    own.close()


def test_a_page_of_jobs_is_in_manifest_order_and_past_the_last_page_is_the_last(ledger, clock):
    refs = make_batch(ledger, "b1", 120)

    second = job_page(ledger, "b1", clock(), page=2, size=50)
    beyond = job_page(ledger, "b1", clock(), page=99, size=50)

    assert second is not None and beyond is not None
    assert [job.ref for job in second.jobs] == refs[50:100]
    assert (second.page, second.pages) == (2, 3)
    assert [job.ref for job in beyond.jobs] == refs[100:]
    assert beyond.page == 3
    assert job_page(ledger, "no-such-batch", clock()) is None


def test_the_failed_list_holds_failed_jobs_in_the_order_they_failed(ledger, clock):
    make_batch(ledger, "b2", 10)
    first = end_dispatched(ledger, "b2", JobState.FAILED)
    clock.now += 5
    second = end_dispatched(ledger, "b2", JobState.FAILED)
    end_dispatched(ledger, "b2", JobState.STORED)

    page = job_page(ledger, "b2", clock(), only_failed=True, size=3)

    assert page is not None
    assert [job.ref for job in page.jobs] == (first + second)[:3]
    assert page.pages == 3  # 8 failed, 3 a page
    assert all(job.state is JobState.FAILED for job in page.jobs)


def test_retrying_takes_jobs_off_the_failed_list(ledger, clock):
    make_batch(ledger, "b3", 6)
    failed = end_dispatched(ledger, "b3", JobState.FAILED)
    end_dispatched(ledger, "b3", JobState.FAILED)

    assert ledger.batches.retry(failed[0]) is True
    assert ledger.batches.retry(failed[0]) is False  # no longer failed
    left = ledger.jobs.failed_ids("b3")
    assert failed[0].job_id not in left and len(left) == 5
    assert ledger.batches.retry_failed("b3") == 5
    assert ledger.jobs.failed_ids("b3") == []
    summary = ledger.batches.summary("b3")
    assert summary is not None and JobState.FAILED not in summary.counts


def test_pace_is_jobs_ended_a_minute_over_the_window_and_eta_follows(ledger, clock):
    clock.now = 60 * 1_000_000  # the start of a minute
    make_batch(ledger, "b4", 40)
    clock.now += 30
    end_dispatched(ledger, "b4", JobState.STORED)  # 4 jobs
    clock.now += 30
    end_dispatched(ledger, "b4", JobState.STORED)  # 4 more, 60 s after the start

    summary = ledger.batches.summary("b4")
    assert summary is not None
    progress = batch_progress(ledger, summary, clock())

    assert progress.jobs_per_min == 8.0  # 8 jobs in the 60 s since the batch began
    assert progress.eta_s == pytest.approx(32 / (8 / 60))
    assert progress.status == "running"


def test_pace_forgets_what_ended_before_the_window(ledger, clock):
    clock.now = 60 * 1_000_000
    make_batch(ledger, "b5", 40)
    end_dispatched(ledger, "b5", JobState.STORED)
    clock.now += THROUGHPUT_WINDOW_S + 120  # nothing ended since
    summary = ledger.batches.summary("b5")
    assert summary is not None

    progress = batch_progress(ledger, summary, clock())

    assert progress.jobs_per_min == 0.0
    assert progress.eta_s is None


def test_a_finished_batch_has_no_eta_left(ledger, clock):
    make_batch(ledger, "b6", 3)
    end_dispatched(ledger, "b6", JobState.STORED)
    summary = ledger.batches.summary("b6")
    assert summary is not None

    progress = batch_progress(ledger, summary, clock())

    assert (progress.status, progress.eta_s, progress.percent) == ("finished", 0.0, 100.0)


def test_batches_are_listed_newest_first_a_page_at_a_time(ledger, clock):
    for index in range(5):
        clock.now += 1
        make_batch(ledger, f"list-{index}", 1)

    first = batch_list(ledger, clock(), page=1, size=2)
    last = batch_list(ledger, clock(), page=7, size=2)

    assert [b.batch_id for b in first.batches] == ["list-4", "list-3"]
    assert (first.pages, last.page) == (3, 3)
    assert [b.batch_id for b in last.batches] == ["list-0"]


def test_accounts_show_slots_in_use_and_a_pause(ledger, clock):
    make_batch(ledger, "b7", 10)
    ledger.account("default").pause("402: out of credits")

    (account,) = account_overview(ledger, {"default": "bfl"}, {})

    assert (account.name, account.flavor, account.slots) == ("default", "bfl", SLOTS)
    assert account.state.slots_in_use == 0  # leased when dispatched: none posted yet
    assert account.as_json()["paused"] == "402: out of credits"
    assert account.balance is None
