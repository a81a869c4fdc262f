"""Storage events from listings, for S3 servers that send no notifications (SeaweedFS).

Each poll lists the watched prefix and hands on an event for every object that is new,
or whose ETag changed, since the cursor last recorded it. The cursor (key → ETag, in
the ledger's Redis) is updated only after the intake has recorded the object's jobs, so
a poller that dies mid-poll hands the same objects on again, and the intake records
nothing twice. The first poll of a prefix takes what is already there as seen, unless
`backfill`. An overwrite with identical bytes keeps its ETag and is not seen.
"""

from __future__ import annotations

from pipeline.ledger.triggers import ListingCursor
from pipeline.storage import ListedObject, Storage
from pipeline.triggers.events import ObjectEvent
from pipeline.triggers.intake import TriggerIntake

ORIGIN = "listing"


class ListingPoller:
    """Polls one bucket and prefix."""

    def __init__(
        self,
        intake: TriggerIntake,
        storage: Storage,
        cursor: ListingCursor,
        *,
        bucket: str,
        prefix: str,
        backfill: bool = False,
    ) -> None:
        self._intake = intake
        self._storage = storage
        self._cursor = cursor
        self.bucket = bucket
        self.prefix = prefix
        self._backfill = backfill

    def __repr__(self) -> str:
        return f"ListingPoller(s3://{self.bucket}/{self.prefix})"

    def poll(self) -> int:
        """One listing; the number of events handed on."""
        first = not self._cursor.started
        handed_on = 0
        present: set[str] = set()
        for page in self._storage.list_pages(self.bucket, self.prefix):
            present.update(item.key for item in page)
            if first and not self._backfill:
                self._cursor.record({item.key: item.etag for item in page})
                continue
            handed_on += self._hand_on(page)
        if first:
            self._cursor.mark_started()
        self._cursor.forget_missing(present)
        return handed_on

    def _hand_on(self, page: list[ListedObject]) -> int:
        recorded = self._cursor.etags([item.key for item in page])
        changed = [item for item, etag in zip(page, recorded, strict=True) if etag != item.etag]
        if not changed:
            return 0
        self._intake.handle(
            ObjectEvent(self.bucket, item.key, etag=item.etag, size=item.size, origin=ORIGIN)
            for item in changed
        )
        self._cursor.record({item.key: item.etag for item in changed})
        return len(changed)
