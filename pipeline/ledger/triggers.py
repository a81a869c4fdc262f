"""Triggered jobs in the ledger: recording them once per event, and their masks.

seen:<rule>:<bucket>/<key>     hash: id, order, object of the latest event recorded
                               for the rule and object (deduplication, out-of-order events)
mask-wait:<mask uri>           set: keys of the jobs waiting for that mask
listing:<bucket>/<prefix>      hash: key -> ETag, the listing poller's cursor
listing-started:<bucket>/<prefix>   string: the poller has taken its first listing
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

import redis

from pipeline.ledger.keys import Keys
from pipeline.ledger.scripts import Scripts
from pipeline.models import JobRef, JobSpec

# How long an event is remembered, so a redelivery within it records nothing twice.
SEEN_TTL_S = 14 * 24 * 3600


class Recorded(StrEnum):
    """What became of one triggered job."""

    QUEUED = "queued"
    AWAITING_MASK = "awaiting_mask"
    CANCELLED = "cancelled"
    DUPLICATE = "duplicate"
    STALE = "stale"

    @property
    def created(self) -> bool:
        return self in {Recorded.QUEUED, Recorded.AWAITING_MASK, Recorded.CANCELLED}


@dataclass(frozen=True)
class EventMark:
    """Which event made a job: the rule and object, the object's version (or ETag), the
    event's identity (that and its sequencer), and the sequencer in comparable form
    ('' for none)."""

    rule: str
    bucket: str
    key: str
    object_id: str
    event_id: str
    order: str = ""


class TriggerStore:
    """The ledger's side of trigger rules."""

    def __init__(self, client: redis.Redis, keys: Keys, scripts: Scripts) -> None:
        self._redis = client
        self._keys = keys
        self._scripts = scripts

    def add(
        self,
        spec: JobSpec,
        *,
        source: str,
        mark: EventMark,
        mask_uri: str | None = None,
        late_at: float | None = None,
        notify: str | None = None,
    ) -> Recorded:
        """Record a job in its (rolling) batch, once per event.

        With `mask_uri` the job waits for that mask until `late_at`; otherwise it is
        queued at once. `source` names the batch's origin and `notify` the URL its jobs
        notify as each ends (`pipeline.notify`), when this job creates the batch.
        """
        answer = self._scripts.add_triggered(
            spec,
            source=source,
            seen=self._seen_key(mark),
            event_id=mark.event_id,
            object_id=mark.object_id,
            order=mark.order,
            seen_ttl_s=SEEN_TTL_S,
            waits_for=None if mask_uri is None else self._mask_wait_key(mask_uri),
            late_at=late_at,
            notify=notify,
        )
        return Recorded(answer)

    def waiting_for(self, mask_uri: str) -> list[JobRef]:
        """The jobs waiting for the mask at `mask_uri`."""
        members = self._redis.smembers(self._mask_wait_key(mask_uri))
        return sorted(self._keys.ref(key) for key in members)

    def stop_waiting(self, mask_uri: str, refs: Iterable[JobRef]) -> None:
        """Take jobs off the mask's waiting list (they were queued or failed)."""
        keys = [self._keys.job(ref) for ref in refs]
        if keys:
            self._redis.srem(self._mask_wait_key(mask_uri), *keys)

    def listing(self, bucket: str, prefix: str) -> ListingCursor:
        return ListingCursor(self._redis, f"{self._keys.prefix}listing:{bucket}/{prefix}")

    def _seen_key(self, mark: EventMark) -> str:
        return f"{self._keys.prefix}seen:{mark.rule}:{mark.bucket}/{mark.key}"

    def _mask_wait_key(self, mask_uri: str) -> str:
        return f"{self._keys.prefix}mask-wait:{mask_uri}"


class ListingCursor:
    """A listing poller's durable cursor: the ETag of every object it has handed on."""

    def __init__(self, client: redis.Redis, key: str) -> None:
        self._redis = client
        self._key = key
        self._started_key = key.replace(":listing:", ":listing-started:", 1)

    @property
    def started(self) -> bool:
        return bool(self._redis.exists(self._started_key))

    def mark_started(self) -> None:
        self._redis.set(self._started_key, "1")

    def etags(self, keys: list[str]) -> list[str | None]:
        """The recorded ETag of each key (None: never seen)."""
        return self._redis.hmget(self._key, keys) if keys else []

    def record(self, etags: Mapping[str, str]) -> None:
        if etags:
            mapping: dict[str | bytes, str | bytes | int | float] = {k: v for k, v in etags.items()}
            self._redis.hset(self._key, mapping=mapping)

    def forget_missing(self, present: set[str]) -> int:
        """Forget keys no longer listed (deleted objects); return how many."""
        gone = [key for key in self._redis.hkeys(self._key) if key not in present]
        if gone:
            self._redis.hdel(self._key, *gone)
        return len(gone)
