"""Each provider account is a slot pool of its own in the ledger (a real Valkey)."""

from __future__ import annotations

import uuid

import pytest

from pipeline.ledger import Ledger, PoolLimits, redis_client
from pipeline.models import EditParams, JobRef, JobSpec
from pipeline.states import JobState

pytestmark = pytest.mark.timeout(20)

POOLS = {"brand-a": PoolLimits(3), "brand-b": PoolLimits(5)}


@pytest.fixture
def ledger(valkey_url, clock):
    own = Ledger(
        redis_client(valkey_url),
        pools=POOLS,
        default_account="brand-b",
        clock=clock,
        prefix=f"pools-{uuid.uuid4().hex[:12]}:",
    )
    yield own
    own.close()


def specs(batch: str, counts: dict[str, int]) -> list[JobSpec]:
    """`counts[account]` jobs on each account, interleaved."""
    accounts = [
        name for turn in range(sum(counts.values())) for name in counts if turn < counts[name]
    ]
    return [
        JobSpec(
            ref=JobRef(batch, f"{account}-{index}"),
            image_uri="s3://fillpipe/in.png",
            mask_uri=None,
            output_uri=f"s3://fillpipe/out/{index}.png",
            params=EditParams(prompt="p", finetune_id=f"ft-{account}"),
            account=account,
        )
        for index, account in enumerate(accounts)
    ]


def submits(ledger: Ledger) -> list[tuple[JobRef, int]]:
    """The submit entries of the outbox, taken out."""
    entries = [entry for entry in ledger.outbox.waiting() if entry.task == "submit"]
    if entries:
        ledger.redis.xdel(ledger.keys.outbox, *(entry.entry_id for entry in entries))
    return [(entry.ref, entry.attempt) for entry in entries]


def account_of(ref: JobRef) -> str:
    return ref.job_id.rsplit("-", 1)[0]


def take_all(ledger: Ledger, dispatched: list[tuple[JobRef, int]]) -> dict[str, int]:
    """Every dispatched job tries to take a slot: how many got one, per account."""
    went: dict[str, int] = {}
    for ref, attempt in dispatched:
        if ledger.slots.take(ref, attempt) == "go":
            went[account_of(ref)] = went.get(account_of(ref), 0) + 1
    return went


def finish(ledger: Ledger, ref: JobRef, attempt: int) -> None:
    ledger.jobs.transition(
        ref, from_states=[JobState.DISPATCHED], to_state=JobState.SUBMITTING, attempt=attempt
    )
    ledger.jobs.transition(
        ref, from_states=[JobState.SUBMITTING], to_state=JobState.FAILED, attempt=attempt
    )


def test_each_account_leases_up_to_its_own_slots_and_dispatches_ahead_as_many(ledger):
    ledger.batches.create("mixed", specs("mixed", {"brand-a": 20, "brand-b": 20}))

    dispatched = submits(ledger)
    per_account = {name: sum(account_of(ref) == name for ref, _ in dispatched) for name in POOLS}
    assert per_account == {"brand-a": 3, "brand-b": 5}  # one per free slot

    assert take_all(ledger, dispatched) == {"brand-a": 3, "brand-b": 5}
    ahead = submits(ledger)  # every slot in use: a pool's worth prepared ahead
    assert {name: sum(account_of(ref) == name for ref, _ in ahead) for name in POOLS} == {
        "brand-a": 3,
        "brand-b": 5,
    }
    assert take_all(ledger, ahead) == {}  # no slot free in either pool: they wait
    assert len(ledger.slots.leases("brand-a")) == 3
    assert len(ledger.slots.leases("brand-b")) == 5


def test_a_slot_freed_in_one_pool_goes_to_that_pool_only(ledger):
    ledger.batches.create("mixed", specs("mixed", {"brand-a": 10, "brand-b": 10}))
    first = submits(ledger)
    take_all(ledger, first)
    ahead = submits(ledger)
    take_all(ledger, ahead)

    ref, attempt = next((ref, attempt) for ref, attempt in first if account_of(ref) == "brand-a")
    finish(ledger, ref, attempt)

    handed = [
        (r, a) for r, a in ahead if ledger.slots.holds(r, a, account_of(r))
    ]  # the oldest waiting brand-a job took the slot
    assert [account_of(r) for r, _ in handed] == ["brand-a"]
    assert len(ledger.slots.leases("brand-a")) == 3
    assert len(ledger.slots.leases("brand-b")) == 5


def test_a_paused_account_stops_alone_and_resumes(ledger):
    ledger.account("brand-a").pause("no credits (402)")

    ledger.batches.create("mixed", specs("mixed", {"brand-a": 4, "brand-b": 4}))

    dispatched = submits(ledger)
    assert {account_of(ref) for ref, _ in dispatched} == {"brand-b"}
    assert ledger.account("brand-a").state().paused_reason == "no credits (402)"
    assert ledger.account("brand-b").state().paused_reason is None

    assert ledger.account("brand-a").resume() == "no credits (402)"
    ledger.slots.dispatch("brand-a")
    assert {account_of(ref) for ref, _ in submits(ledger)} == {"brand-a"}


def test_an_account_at_its_daily_budget_dispatches_nothing_until_the_next_day(valkey_url, clock):
    ledger = Ledger(
        redis_client(valkey_url),
        pools={"capped": PoolLimits(4, daily_budget_credits=10.0)},
        clock=clock,
        prefix=f"budget-{uuid.uuid4().hex[:12]}:",
    )
    ledger.batches.create("b", specs("b", {"capped": 8}))
    first = submits(ledger)
    assert len(first) == 4
    ref, attempt = first[0]
    ledger.jobs.transition(
        ref, from_states=[JobState.DISPATCHED], to_state=JobState.SUBMITTING, attempt=attempt
    )
    assert len(submits(ledger)) == 1  # its place among the dispatched is filled
    ledger.jobs.transition(
        ref,
        from_states=[JobState.SUBMITTING],
        to_state=JobState.FAILED,
        attempt=attempt,
        cost_delta=10.0,  # the day's budget spent
    )
    assert ledger.account("capped").state().spent_today_credits == 10.0
    ledger.jobs.transition(
        first[1][0], from_states=[JobState.DISPATCHED], to_state=JobState.CANCELLED
    )
    assert submits(ledger) == []  # nothing more is dispatched today

    clock.now += 24 * 3600
    assert ledger.slots.dispatch("capped") == 1
    ledger.close()


def test_jobs_of_an_account_no_longer_configured_wait(valkey_url, clock, ledger):
    ledger.batches.create("gone", specs("gone", {"brand-z": 2, "brand-a": 1}))

    assert [account_of(ref) for ref, _ in submits(ledger)] == ["brand-a"]
    assert ledger.batches.summary("gone").counts[JobState.QUEUED] == 2
