"""Polling instead of callbacks: each active task is asked for its result about once a
second, so its slot turns over within about a second of the task ending.

With callbacks off (`FILLPIPE_CALLBACKS=off`, or no `FILLPIPE_PUBLIC_URL`: a laptop, a
VPC without ingress) a submit asks for no webhook, and its task is filed in the
ledger's poll set, due `FIRST_POLL_S` after the POST (`file_first_poll`). A `Poller`
takes the polls that are due in one ledger script (`lua/claim_polls.lua`): it queues a
`collect` for each through the outbox and, in the same step, files it again
`CLAIM_LEASE_S` later, so pollers in several workers never poll one task at once. The
collect polls the task; a task that ended has its slot given back and its result
stored, exactly as after a callback. A task still running is filed for its next poll
(`file_next_poll`): every `POLL_EVERY_S` for the first `FAST_POLLS_FOR_S` of the task,
then each wait `POLL_GROWTH` times the last, up to `MAX_POLL_EVERY_S`. No task is
polled more than once a second, so an account's polls stay within one a second per
slot (24 slots: at most 24 requests a second). The reconcile sweep stays the safety
net: a job nobody polled within `callback_late_s` is polled by the sweep, whose collect
files it for polling again.

The poller runs as a thread in every worker (`workers.poller`), only while callbacks
are off, rather than as a beat entry: it claims straight from Redis and sleeps until
the next poll is due, where beat would send a broker message per tick at a whole-second
granularity; and where beat is one process whose loss would stop every poll, each
worker has a poller and any one of them is enough (their claims are atomic, so they
share the work). A poller is alive exactly where the collects it queues can run.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from pipeline.ledger import Ledger
from pipeline.ledger.jobs import ClaimedPolls
from pipeline.models import JobRef
from pipeline.runtime import Runtime
from pipeline.settings import Settings, redact_url

log = logging.getLogger(__name__)

# The first poll of a task, after its submit.
FIRST_POLL_S = 1.0
# The wait between polls of a task for its first FAST_POLLS_FOR_S...
POLL_EVERY_S = 1.0
FAST_POLLS_FOR_S = 30.0
# ...after which each wait is POLL_GROWTH times the one before, up to MAX_POLL_EVERY_S.
POLL_GROWTH = 1.5
MAX_POLL_EVERY_S = 10.0
# A claimed poll is claimed again after this long unless its collect filed it sooner
# (a collect message lost or stuck behind a busy worker).
CLAIM_LEASE_S = 15.0
# Polls claimed per script run; a poller claims again at once while it takes this many.
CLAIM_LIMIT = 200
# A poller sleeps until the next poll is due, within these bounds.
MIN_SLEEP_S = 0.01
MAX_SLEEP_S = 1.0
# After an error (Redis unreachable beyond its client's retries), wait this long.
ERROR_PAUSE_S = 1.0


def poll_every_s(age_s: float) -> float:
    """How long to wait before the next poll of a task submitted `age_s` ago.

    `POLL_EVERY_S` until `FAST_POLLS_FOR_S`; then a wait that grows `POLL_GROWTH` times
    with each poll. Polls whose waits grow so from `POLL_EVERY_S` at age
    `FAST_POLLS_FOR_S` each wait `POLL_EVERY_S + (POLL_GROWTH - 1) x (age -
    FAST_POLLS_FOR_S)`, which needs no state but the task's age. Capped at
    `MAX_POLL_EVERY_S`."""
    grown = POLL_EVERY_S + (POLL_GROWTH - 1) * (age_s - FAST_POLLS_FOR_S)
    return min(MAX_POLL_EVERY_S, max(POLL_EVERY_S, grown))


def file_first_poll(rt: Runtime, ref: JobRef, attempt: int) -> None:
    """The provider took `attempt` of the job: poll its task `FIRST_POLL_S` from now."""
    rt.ledger.jobs.file_poll(ref, attempt, rt.clock() + FIRST_POLL_S)


def file_next_poll(rt: Runtime, ref: JobRef, attempt: int) -> None:
    """The job's task is still running: poll it again after `poll_every_s` (measured
    from its submit; a task whose submit time is not recorded counts as new)."""
    now = rt.clock()
    submitted_at = rt.ledger.jobs.submitted_at(ref)
    age_s = 0.0 if submitted_at is None else now - submitted_at
    rt.ledger.jobs.file_poll(ref, attempt, now + poll_every_s(age_s))


def mode_line(settings: Settings) -> str:
    """The line each process logs as it starts: where callbacks come, or that it polls."""
    if settings.callbacks and settings.public_url:
        return f"callbacks via {redact_url(settings.public_url)}"
    return f"callbacks off: polling each active task every ~{POLL_EVERY_S:g} s"


class Poller:
    """Claims the polls that are due and queues a collect for each (see the module)."""

    def __init__(self, ledger: Ledger, *, clock: Callable[[], float] = time.time) -> None:
        self._ledger = ledger
        self._clock = clock

    def __repr__(self) -> str:
        return f"Poller({self._ledger!r})"

    def poll_once(self) -> ClaimedPolls:
        """Claim every poll due now; return them and when the next one is due."""
        jobs: list[tuple[JobRef, int]] = []
        while True:
            claim = self._ledger.jobs.claim_polls(limit=CLAIM_LIMIT, lease_s=CLAIM_LEASE_S)
            jobs += claim.jobs
            if len(claim.jobs) < CLAIM_LIMIT:
                return ClaimedPolls(jobs, claim.next_due_at)

    def sleep_s(self, claim: ClaimedPolls) -> float:
        """How long to sleep after `claim`: until the next poll is due, within bounds."""
        if claim.next_due_at is None:
            return MAX_SLEEP_S
        return min(MAX_SLEEP_S, max(MIN_SLEEP_S, claim.next_due_at - self._clock()))

    def run(self, stop: threading.Event) -> None:
        """Claim polls until `stop` is set; errors are logged and the poller goes on."""
        while not stop.is_set():
            try:
                pause_s = self.sleep_s(self.poll_once())
            except Exception:
                log.exception("poller: claiming polls failed; trying again")
                pause_s = ERROR_PAUSE_S
            stop.wait(pause_s)
