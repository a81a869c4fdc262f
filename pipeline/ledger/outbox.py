"""The outbox: work for the workers, queued by the same script that changes a job.

The ledger's scripts append an entry to one Redis stream (`<prefix>outbox`) in the same
atomic step as the state change it follows from, so a job is never moved without its
follow-up being queued. Each entry has four fields:

    task      "submit" (a job was leased a slot), "collect" (its task has ended) or
              "notify" (a job or batch ended that notifies: `pipeline.notify`)
    batch     the batch id
    job       the job id ("" for a batch's notification)
    attempt   the attempt, in decimal (a batch's notification: how many times it finished)

A relay in every worker (`workers.relay`) reads the stream as one consumer of the group
`relay`, publishes each entry as the Celery task of that name, then acknowledges and
deletes it; entries a dead relay had read are claimed by another after a while. So an
entry may be published twice, never lost; the tasks are idempotent on (job, attempt).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis

from pipeline.ledger.keys import Keys
from pipeline.models import JobRef

GROUP = "relay"
Entry = tuple[str, dict[str, str]]


@dataclass(frozen=True)
class OutboxEntry:
    """One piece of work: run `task` for `attempt` of the job."""

    entry_id: str
    task: str
    ref: JobRef
    attempt: int


class Outbox:
    """The outbox stream, as its relays read it."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._redis = client
        self._key = keys.outbox

    def ensure_group(self) -> None:
        """Create the relays' group (and the stream) unless they exist; a new group
        starts from the stream's first entry, so nothing queued before is missed."""
        try:
            self._redis.xgroup_create(self._key, GROUP, id="0", mkstream=True)
        except redis.ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    def read(self, consumer: str, *, block_s: float, count: int) -> list[OutboxEntry]:
        """New entries for `consumer`, waiting up to `block_s` for the first. The group
        is created on first use, and again if the stream was deleted (a flushed database)."""
        try:
            reply = self._read(consumer, block_s, count)
        except redis.ResponseError as error:
            if "NOGROUP" not in str(error):
                raise
            self.ensure_group()
            reply = self._read(consumer, block_s, count)
        return [_entry(item) for _, items in reply or [] for item in items]

    def _read(self, consumer: str, block_s: float, count: int) -> Any:
        return self._redis.xreadgroup(
            GROUP, consumer, {self._key: ">"}, count=count, block=int(block_s * 1000)
        )

    def claim_abandoned(self, consumer: str, *, min_idle_s: float, count: int) -> list[OutboxEntry]:
        """Entries another relay read over `min_idle_s` ago and never finished."""
        try:
            reply = self._redis.xautoclaim(
                self._key, GROUP, consumer, int(min_idle_s * 1000), count=count
            )
        except redis.ResponseError as error:
            if "NOGROUP" not in str(error):
                raise
            return []
        return [_entry(item) for item in reply[1] if item[1]]

    def done(self, entries: Sequence[OutboxEntry]) -> None:
        """Acknowledge and delete published entries."""
        if not entries:
            return
        ids = [entry.entry_id for entry in entries]
        pipe = self._redis.pipeline(transaction=False)
        pipe.xack(self._key, GROUP, *ids)
        pipe.xdel(self._key, *ids)
        pipe.execute()

    def forget(self, consumer: str) -> None:
        """Remove `consumer` from the group, unless it still holds unfinished entries
        (another relay claims those later)."""
        pending = self._redis.xpending_range(self._key, GROUP, "-", "+", 1, consumername=consumer)
        if not pending:
            self._redis.xgroup_delconsumer(self._key, GROUP, consumer)

    def waiting(self) -> list[OutboxEntry]:
        """Every entry not yet published, oldest first."""
        return [_entry(item) for item in self._redis.xrange(self._key)]


def _entry(item: Entry) -> OutboxEntry:
    entry_id, fields = item
    return OutboxEntry(
        entry_id=entry_id,
        task=fields["task"],
        ref=JobRef(fields["batch"], fields["job"]),
        attempt=int(fields["attempt"]),
    )
