"""What an operator watches, read from the ledger with bounded work.

    batch_list       a page of the newest batches, each with its progress
    batch_progress   a batch's counters with its throughput (jobs ended a minute over the
                     last five), its ETA at that pace, and its cost
    job_page         one page of a batch's jobs, in manifest order or only the failed ones
    account_overview each account's slots in use, pause, cool-down and spend today

Nothing here reads every job of a batch: counters, the ends-per-minute tally, one page
of job ids and their records, so a 100,000-job batch costs what a 100-job one does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from math import ceil

from pipeline.balances import AccountBalance
from pipeline.ledger import AccountState, BatchSummary, Ledger
from pipeline.models import CREDITS_PER_USD, JobRecord
from pipeline.states import JobState

THROUGHPUT_WINDOW_S = 300.0
# Below this much time since a batch began its pace means nothing yet.
MIN_RATE_SPAN_S = 1.0
PAGE_SIZE = 50
BATCHES_PER_PAGE = 25
MAX_PAGE_SIZE = 500


@dataclass(frozen=True)
class BatchProgress:
    """A batch's counters, pace, ETA and cost."""

    summary: BatchSummary
    # Jobs ended a minute over the last `THROUGHPUT_WINDOW_S` (None: too early to say).
    jobs_per_min: float | None
    # Seconds until every job has ended at that pace (None: unknown, 0: finished).
    eta_s: float | None

    @property
    def batch_id(self) -> str:
        return self.summary.batch_id

    @property
    def percent(self) -> float:
        total = self.summary.total
        return 100.0 if not total else round(100.0 * self.summary.finished / total, 1)

    @property
    def cost_usd(self) -> float:
        return round(self.summary.cost_credits / CREDITS_PER_USD, 4)

    @property
    def status(self) -> str:
        """`finished`, `cancelled` or `running`."""
        if self.summary.done:
            return "finished"
        return "cancelled" if self.summary.cancelled else "running"

    def as_json(self) -> dict[str, object]:
        summary = self.summary
        return {
            "batch": summary.batch_id,
            "status": self.status,
            "created_at": summary.created_at,
            "source": summary.source,
            "total": summary.total,
            "finished": summary.finished,
            "counts": {state.value: count for state, count in summary.counts.items()},
            "percent": self.percent,
            "jobs_per_min": self.jobs_per_min,
            "eta_s": self.eta_s,
            "cost_credits": round(summary.cost_credits, 4),
            "cost_usd": self.cost_usd,
            "budget_credits": summary.budget_credits,
        }


def batch_progress(ledger: Ledger, summary: BatchSummary, now: float) -> BatchProgress:
    """The batch's pace over the last `THROUGHPUT_WINDOW_S` (or since it began, if later)
    and the time its remaining jobs take at that pace."""
    if summary.done:
        return BatchProgress(summary, None, 0.0)
    since = max(now - THROUGHPUT_WINDOW_S, summary.created_at)
    ended = ledger.batches.ended_since(summary.batch_id, since)
    # The tally counts whole minutes: the window starts where its first minute does,
    # unless the batch began later in that minute.
    span = now - max(since // 60 * 60, summary.created_at)
    if span < MIN_RATE_SPAN_S:
        return BatchProgress(summary, None, None)
    per_s = ended / span
    remaining = summary.total - summary.finished
    eta = remaining / per_s if per_s > 0 else None
    return BatchProgress(summary, round(per_s * 60, 1), eta)


@dataclass(frozen=True)
class BatchList:
    """One page of the ledger's batches, newest first."""

    batches: list[BatchProgress]
    page: int  # from 1
    pages: int


def batch_list(
    ledger: Ledger, now: float, *, page: int = 1, size: int = BATCHES_PER_PAGE
) -> BatchList:
    """Page `page` (from 1; past the last, the last) of the batches, newest first."""
    pages = max(1, ceil(ledger.batches.count() / size))
    page = max(1, min(page, pages))
    summaries = ledger.batches.recent(size, skip=(page - 1) * size)
    return BatchList([batch_progress(ledger, each, now) for each in summaries], page, pages)


@dataclass(frozen=True)
class JobPage:
    """One page of a batch's jobs."""

    batch: BatchProgress
    jobs: list[JobRecord]
    page: int  # from 1
    pages: int
    only_failed: bool
    size: int


def job_page(
    ledger: Ledger,
    batch_id: str,
    now: float,
    *,
    page: int = 1,
    only_failed: bool = False,
    size: int = PAGE_SIZE,
) -> JobPage | None:
    """Page `page` (from 1; past the last, the last) of the batch's jobs, `size` a page:
    every job in manifest order, or the failed ones in the order they failed. None for a
    batch the ledger does not hold."""
    summary = ledger.batches.summary(batch_id)
    if summary is None:
        return None
    size = max(1, min(size, MAX_PAGE_SIZE))
    listed = summary.counts.get(JobState.FAILED, 0) if only_failed else summary.total
    pages = max(1, ceil(listed / size))
    page = max(1, min(page, pages))
    start = (page - 1) * size
    read = ledger.jobs.failed_page if only_failed else ledger.jobs.page
    jobs = read(batch_id, start, size)
    return JobPage(batch_progress(ledger, summary, now), jobs, page, pages, only_failed, size)


@dataclass(frozen=True)
class AccountOverview:
    """One provider account: its limit, its state in the ledger, its last known balance."""

    name: str
    flavor: str
    slots: int
    state: AccountState
    balance: AccountBalance | None

    def as_json(self) -> dict[str, object]:
        return {
            "account": self.name,
            "flavor": self.flavor,
            "slots": self.slots,
            "slots_in_use": self.state.slots_in_use,
            "paused": self.state.paused_reason,
            "cooldown_s": round(self.state.cooldown_s, 3),
            "spent_today_credits": round(self.state.spent_today_credits, 2),
            "balance_credits": None if self.balance is None else self.balance.credits,
            "balance_error": None if self.balance is None else self.balance.error,
        }


def account_overview(
    ledger: Ledger, flavors: Mapping[str, str], balances: Mapping[str, AccountBalance]
) -> list[AccountOverview]:
    """Every account the ledger has a pool for, in order, with its balance if known."""
    return [
        AccountOverview(
            name,
            flavors.get(name, ""),
            limits.slots,
            ledger.account(name).state(),
            balances.get(name),
        )
        for name, limits in ledger.pools.items()
    ]
