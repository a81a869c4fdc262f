"""The outbox relay: the ledger's outbox entries published as Celery tasks.

The ledger's scripts queue follow-up work (a submit for each job leased a slot, a
collect for each task that ended) in a Redis stream, atomically with the state change
(see `pipeline.ledger.outbox`). Every worker runs one relay in a thread of its own
(`RelayStep`, started and stopped with the worker): it waits on the stream, publishes
each entry with Celery's `send_task`, then acknowledges and deletes it. Entries a relay
read and did not finish (its worker died) are claimed by another after
`ABANDONED_AFTER_S`. Tasks are idempotent on (job, attempt), so publishing twice is
harmless; an entry is never dropped.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence

from celery import Celery
from celery.worker import WorkController

from pipeline.ledger.outbox import Outbox, OutboxEntry
from workers.app import TASK_COLLECT, TASK_NOTIFY, TASK_SUBMIT
from workers.steps import ThreadStep

log = logging.getLogger(__name__)

TASK_NAMES = {"submit": TASK_SUBMIT, "collect": TASK_COLLECT, "notify": TASK_NOTIFY}
# How long one read waits for new entries (and so how soon a stop is noticed).
READ_BLOCK_S = 1.0
READ_COUNT = 100
# Entries another relay read this long ago and never finished are taken over.
ABANDONED_AFTER_S = 30.0
CLAIM_EVERY_S = 10.0
# After an error (Redis unreachable beyond its client's retries), wait this long.
ERROR_PAUSE_S = 1.0


class OutboxRelay:
    """Publishes outbox entries as Celery tasks, as consumer `consumer` of the stream."""

    def __init__(
        self,
        app: Celery,
        outbox: Outbox,
        consumer: str,
        *,
        abandoned_after_s: float = ABANDONED_AFTER_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._app = app
        self._outbox = outbox
        self._consumer = consumer
        self._abandoned_after_s = abandoned_after_s
        self._clock = clock
        self._claim_at = clock()

    def __repr__(self) -> str:
        return f"OutboxRelay(consumer={self._consumer!r})"

    def relay_once(self, *, block_s: float = READ_BLOCK_S) -> int:
        """Publish the entries waiting (and any abandoned ones); return how many."""
        entries = self._outbox.read(self._consumer, block_s=block_s, count=READ_COUNT)
        if self._clock() >= self._claim_at:
            self._claim_at = self._clock() + CLAIM_EVERY_S
            entries += self._outbox.claim_abandoned(
                self._consumer, min_idle_s=self._abandoned_after_s, count=READ_COUNT
            )
        self.publish(entries)
        self._outbox.done(entries)
        return len(entries)

    def publish(self, entries: Sequence[OutboxEntry]) -> None:
        if not entries:
            return
        with self._app.producer_or_acquire() as producer:
            for entry in entries:
                self._app.send_task(
                    TASK_NAMES[entry.task],
                    args=[entry.ref.batch_id, entry.ref.job_id, entry.attempt],
                    producer=producer,
                )

    def run(self, stop: threading.Event) -> None:
        """Relay until `stop` is set; errors are logged and the relay goes on."""
        while not stop.is_set():
            try:
                self.relay_once()
            except Exception:
                log.exception("outbox relay: publishing failed; trying again")
                stop.wait(ERROR_PAUSE_S)
        try:
            self._outbox.forget(self._consumer)
        except Exception:
            log.warning("outbox relay: could not leave the consumer group", exc_info=True)


class RelayStep(ThreadStep):
    """Runs an `OutboxRelay` in a thread for as long as the worker runs."""

    def start(self, parent: WorkController) -> None:
        from workers.context import runtime

        consumer = f"{socket.gethostname()}:{os.getpid()}"
        relay = OutboxRelay(parent.app, runtime().ledger.outbox, consumer)
        self.run_loop(relay.run, "fillpipe-relay")
