"""The moves that submit, collect and the reconcile sweep share: ending a job, putting
it back in line, and how long the account waits after trouble reaching the provider."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from pipeline.models import JobRef
from pipeline.runtime import Runtime
from pipeline.states import JobState

log = logging.getLogger(__name__)

# Backoff of the whole account after the provider could not be reached: 2**n s, capped.
MAX_COOLDOWN_S = 60.0


def end_job(
    rt: Runtime,
    ref: JobRef,
    attempt: int,
    state: JobState,
    error: str,
    *,
    from_states: Iterable[JobState],
    refund_credits: float | None = None,
) -> JobState:
    """End `attempt` of the job in the terminal `state`, saying why."""
    log.info("job %s attempt %d ends %s: %s", ref, attempt, state.value, error)
    rt.ledger.jobs.transition(
        ref,
        from_states=from_states,
        to_state=state,
        attempt=attempt,
        fields={"error": error},
        cost_delta=-refund_credits if refund_credits else None,
    )
    return state


def back_in_line(
    rt: Runtime, ref: JobRef, attempt: int, state: JobState, reason: str
) -> JobState | None:
    """Put a job that was not (or must be again) submitted at the front of its line;
    `queued` if it was still in `state` at `attempt`, else None."""
    moved = rt.ledger.jobs.transition(
        ref,
        from_states=[state],
        to_state=JobState.QUEUED,
        attempt=attempt,
        fields={"error": reason},
    )
    return JobState.QUEUED if moved.applied else None


def backoff_s(streak: int) -> float:
    """Seconds the account waits after `streak` failures in a row to reach a service."""
    return min(MAX_COOLDOWN_S, 2.0 ** max(0, streak - 1))
