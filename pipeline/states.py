"""A job's states and the moves between them: the one table every state change is
checked against (`check_move`, called by `pipeline.ledger.jobs.JobStore.transition`).

    queued ──► dispatched ──► submitting ──► awaiting_result ──► collecting ──► stored
      ▲            │              │               │    ▲            │
      └────────────┴──────────────┴───────────────┘    └────────────┘
                (back in line: not submitted, or     (the task still runs)
                 no trace of an ambiguous submit)

A job made by a trigger rule whose image landed before its mask starts in
`awaiting_mask`, and moves to `queued` once the mask is there.

The dispatcher (in the ledger's scripts) makes one move, handing a queued job to a
submit task (`dispatched`); every other move goes through `check_move` and the table
below. A dispatched job takes a provider slot once its request is ready, and holds it
until the provider says its task has ended; the slot then goes straight to the next job
whose request is ready (`pipeline.ledger.slots`).
"""

from __future__ import annotations

from enum import StrEnum

from pipeline.errors import IllegalMove


class JobState(StrEnum):
    """Where a job is. Terminal states never change again (but `failed` may be retried)."""

    AWAITING_MASK = "awaiting_mask"
    QUEUED = "queued"
    DISPATCHED = "dispatched"
    SUBMITTING = "submitting"
    AWAITING_RESULT = "awaiting_result"
    COLLECTING = "collecting"
    STORED = "stored"
    FAILED = "failed"
    INVALID_INPUT = "invalid_input"
    CANCELLED = "cancelled"
    SKIPPED_BUDGET = "skipped_budget"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATES

    @property
    def holds_slot(self) -> bool:
        """True for states in which the job may hold one of the account's provider slots."""
        return self in SLOT_STATES


TERMINAL_STATES = frozenset(
    {
        JobState.STORED,
        JobState.FAILED,
        JobState.INVALID_INPUT,
        JobState.CANCELLED,
        JobState.SKIPPED_BUDGET,
    }
)

# The states a job is recorded in: a manifest's jobs and most triggered ones are queued.
INITIAL_STATES = frozenset({JobState.QUEUED, JobState.AWAITING_MASK})

# From just before the POST until the provider says the task has ended (the collect
# gives the slot back as soon as it reads that, before it downloads the result).
SLOT_STATES = frozenset(
    {JobState.DISPATCHED, JobState.SUBMITTING, JobState.AWAITING_RESULT, JobState.COLLECTING}
)

_S = JobState
# state -> the states it may move to. A move to the same state re-files the job for the
# reconcile sweep (a later deadline) without changing it.
TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    # A triggered job whose image landed before its mask: in line once the mask lands,
    # failed when it has not by its deadline, cancelled with its batch.
    _S.AWAITING_MASK: frozenset({_S.QUEUED, _S.FAILED, _S.CANCELLED}),
    _S.QUEUED: frozenset({_S.DISPATCHED, _S.CANCELLED}),
    # The submit task: begins the POST (holding a slot), or ends the job before paying
    # (cancelled batch, bad input, over budget), or gives it back to its line (inputs
    # unreadable for now, no slot in time; the sweep, when its submit task is gone).
    _S.DISPATCHED: frozenset(
        {
            _S.SUBMITTING,
            _S.QUEUED,
            _S.CANCELLED,
            _S.INVALID_INPUT,
            _S.FAILED,
            _S.SKIPPED_BUDGET,
        }
    ),
    # The POST's outcome: a task (or an ambiguous answer, awaited all the same), a
    # refusal worth retrying later (back in line), or a permanent refusal.
    _S.SUBMITTING: frozenset({_S.AWAITING_RESULT, _S.QUEUED, _S.FAILED}),
    # The collect takes it; the sweep re-files it, or puts an ambiguous submit that
    # nothing ever named back in line.
    _S.AWAITING_RESULT: frozenset({_S.AWAITING_RESULT, _S.COLLECTING, _S.QUEUED}),
    # Stored, failed by the provider, still running (back to awaiting), or its result
    # lost and submitted again (by policy).
    _S.COLLECTING: frozenset({_S.COLLECTING, _S.AWAITING_RESULT, _S.STORED, _S.FAILED, _S.QUEUED}),
    _S.FAILED: frozenset({_S.QUEUED}),  # `fillpipe retry`
    _S.STORED: frozenset(),
    _S.INVALID_INPUT: frozenset(),
    _S.CANCELLED: frozenset(),
    _S.SKIPPED_BUDGET: frozenset(),
}


# Made only by the dispatcher, in the ledger's scripts.
SCRIPTED_MOVES = frozenset({(JobState.QUEUED, JobState.DISPATCHED)})


def check_move(source: JobState, target: JobState) -> None:
    """Raise `IllegalMove` unless a transition may move a job from `source` to
    `target` (the table's moves, but for the scripted ones)."""
    if target not in TRANSITIONS[source]:
        raise IllegalMove(f"a job cannot move from {source} to {target}")
    if (source, target) in SCRIPTED_MOVES:
        raise IllegalMove(f"only the dispatcher moves a job from {source} to {target}")
