"""What the running batches will still spend, per provider account.

A job not ended yet (queued, waiting for its mask, or on its way through the provider)
will cost about what its batch's jobs have cost so far on average. A batch none of
whose jobs has a cost yet is estimated at the configured price for an output of one
megapixel per job (`FILLPIPE_PRICE_CREDITS_PER_MP`), and says so.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from pipeline.ledger import BatchSummary, Ledger
from pipeline.states import JobState

# Running batches read at most: the newest first (rolling trigger batches included).
MAX_BATCHES_READ = 200


@dataclass(frozen=True)
class SpendToCome:
    """One account's jobs not ended yet in running batches, and their estimated cost."""

    jobs: int = 0
    credits: float = 0.0
    # Some of it is priced by the megapixel price alone: no job of its batch had a cost.
    guessed: bool = False

    def plus(self, jobs: int, credits: float, guessed: bool) -> SpendToCome:
        return SpendToCome(self.jobs + jobs, self.credits + credits, self.guessed or guessed)


def spend_to_come(ledger: Ledger, *, price_credits_per_mp: float) -> dict[str, SpendToCome]:
    """Per account: the running batches' jobs not ended yet and what they should cost."""
    totals: dict[str, SpendToCome] = {}
    for summary in ledger.batches.recent(MAX_BATCHES_READ):
        if summary.done or summary.cancelled:
            continue
        per_job, guessed = _cost_per_job(summary, price_credits_per_mp)
        for account, jobs in _open_jobs_by_account(ledger, summary.batch_id).items():
            totals[account] = totals.get(account, SpendToCome()).plus(jobs, jobs * per_job, guessed)
    return totals


def _cost_per_job(summary: BatchSummary, price_credits_per_mp: float) -> tuple[float, bool]:
    """The batch's average cost per job that has one, else the price of one megapixel."""
    costed = summary.counts.get(JobState.STORED, 0) + summary.counts.get(JobState.FAILED, 0)
    if summary.cost_credits > 0 and costed:
        return summary.cost_credits / costed, False
    return price_credits_per_mp, True


def _open_jobs_by_account(ledger: Ledger, batch_id: str) -> Counter[str]:
    return Counter(
        record.account for record in ledger.jobs.of_batch(batch_id) if not record.state.is_terminal
    )
