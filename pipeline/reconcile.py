"""The reconcile sweep: every job late for its step is acted on, so nothing is lost.

    dispatched       its submit task is gone (a lost message, a dead worker): back in line
    submitting       no outcome recorded (the worker died mid-POST): ambiguous, awaited
    awaiting_result  its task is known: polled (a collect queued); an ambiguous submit
                     that nothing named by its deadline: back in line, a new attempt
    collecting       the collect died: collected again
    awaiting_mask    its mask did not land in time: queued if it is there after all
                     (its event was missed), else failed

A lost webhook therefore delays a job by `callback_late_s` but never loses it. With
callbacks off the poller polls every active task (`pipeline.polling`); a task it has not
polled within `callback_late_s` (no worker ran its poller) is polled here, and a collect
that finds it still running files it for the poller again. Each job
is re-filed with a later deadline in the same step, so the next sweep does not repeat
it. The sweep also runs the dispatcher, in case a wake-up was lost, and makes the next
attempt of each outgoing notification that is due (`pipeline.notify.retry_due`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pipeline import metrics
from pipeline.collect import polling_url_of
from pipeline.models import JobRecord, JobRef
from pipeline.moves import back_in_line
from pipeline.notify import retry_due
from pipeline.runtime import Runtime
from pipeline.states import JobState
from pipeline.triggers.masks import settle_overdue


@dataclass(frozen=True)
class SweepReport:
    """What one sweep did."""

    polled: list[JobRef] = field(default_factory=list)
    requeued: list[JobRef] = field(default_factory=list)
    ambiguous: list[JobRef] = field(default_factory=list)
    # Jobs whose mask wait ended: queued (their mask is there) or failed.
    masks_settled: list[JobRef] = field(default_factory=list)
    dispatched: int = 0

    def counts(self) -> dict[str, int]:
        """How many jobs of each kind the sweep acted on (`pipeline.metrics`)."""
        return {
            "polled": len(self.polled),
            "requeued": len(self.requeued),
            "ambiguous": len(self.ambiguous),
            "masks_settled": len(self.masks_settled),
            "dispatched": self.dispatched,
        }

    @property
    def acted(self) -> bool:
        return bool(
            self.polled or self.requeued or self.ambiguous or self.masks_settled or self.dispatched
        )


def sweep(rt: Runtime) -> SweepReport:
    """Act on every job whose deadline has passed (see the module's docstring)."""
    report = SweepReport()
    for ref in rt.ledger.jobs.late(rt.clock()):
        record = rt.ledger.jobs.get(ref)
        if record is None or record.state is JobState.QUEUED or record.state.is_terminal:
            rt.ledger.jobs.unfile(ref)
        elif record.state is JobState.AWAITING_MASK:
            _settle_mask_wait(rt, record, report)
        elif record.state is JobState.DISPATCHED:
            _requeue(rt, record, "its submit never began; back in line", report)
        elif record.state is JobState.SUBMITTING:
            _await_ambiguous(rt, record, report)
        elif polling_url_of(rt, record) is None:
            reason = "no sign of the task by its deadline; submitting a new attempt"
            _requeue(rt, record, reason, report)
        else:
            _poll(rt, record, report)
    retry_due(rt)
    done = SweepReport(
        report.polled,
        report.requeued,
        report.ambiguous,
        report.masks_settled,
        dispatched=rt.ledger.slots.dispatch(),
    )
    metrics.reconcile_findings(done.counts())
    return done


def _settle_mask_wait(rt: Runtime, record: JobRecord, report: SweepReport) -> None:
    settle_overdue(rt.ledger, rt.storage, record, rt.settings.deadlines.mask_wait_s)
    report.masks_settled.append(record.ref)


def _requeue(rt: Runtime, record: JobRecord, reason: str, report: SweepReport) -> None:
    if back_in_line(rt, record.ref, record.attempt, record.state, reason):
        report.requeued.append(record.ref)


def _await_ambiguous(rt: Runtime, record: JobRecord, report: SweepReport) -> None:
    moved = rt.ledger.jobs.transition(
        record.ref,
        from_states=[JobState.SUBMITTING],
        to_state=JobState.AWAITING_RESULT,
        attempt=record.attempt,
        fields={"error": "its submit stopped midway; awaiting a callback naming it"},
        late_at=rt.clock() + rt.settings.deadlines.ambiguous_submit_s,
    )
    if moved.applied:
        report.ambiguous.append(record.ref)


def _poll(rt: Runtime, record: JobRecord, report: SweepReport) -> None:
    """Queue a collect, which polls the task, and re-file the job past that collect."""
    deadlines = rt.settings.deadlines
    wait_s = (
        deadlines.collect_late_s
        if record.state is JobState.COLLECTING
        else deadlines.callback_late_s
    )
    moved = rt.ledger.jobs.transition(
        record.ref,
        from_states=[record.state],
        to_state=record.state,
        attempt=record.attempt,
        late_at=rt.clock() + wait_s,
        follow_up="collect",
    )
    if moved.applied:
        report.polled.append(record.ref)
