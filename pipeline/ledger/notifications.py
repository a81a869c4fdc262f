"""Outgoing notifications in the ledger: where a batch notifies, and each delivery until
it is sent or given up (`pipeline.notify` makes the attempts).

    batch:<batch>          fields notify (the URL), notify_each ("job": a rule's batch,
                           notified as each job ends), notified (how many times the batch
                           finished with a notification queued)
    notify:<webhook id>    hash: url, body, attempts (made so far); once sent, only
                           `sent` is kept, a day, so an outbox entry published twice
                           sends nothing twice
    notify-due             sorted set: webhook ids by when their next attempt is due

The `transition` script queues a `notify` outbox entry as a job or batch ends; the
worker's first attempt files the delivery (`file`), and the reconcile sweep claims the
due ones (`claim_due`) for their next attempts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import redis

from pipeline.ledger.keys import Keys
from pipeline.ledger.scripts import Scripts

# How long a sent delivery's mark is kept: longer than an outbox entry can be relayed twice.
SENT_MARK_TTL_S = 24 * 3600


@dataclass(frozen=True)
class NotifyTarget:
    """Where a batch notifies: its URL, whether per job (a rule's batch) or once when it
    finishes, and how many times it has finished with a notification queued."""

    url: str
    per_job: bool
    finishes: int


@dataclass(frozen=True)
class PendingDelivery:
    """A notification not yet sent, claimed for its next attempt."""

    webhook_id: str
    url: str
    body: str
    attempts: int


class NotificationStore:
    """The ledger's side of outgoing notifications."""

    def __init__(
        self, client: redis.Redis, keys: Keys, scripts: Scripts, clock: Callable[[], float]
    ) -> None:
        self._redis = client
        self._keys = keys
        self._scripts = scripts
        self._clock = clock

    def target(self, batch_id: str) -> NotifyTarget | None:
        """Where the batch notifies; None when it does not."""
        url, each, finishes = self._redis.hmget(
            self._keys.batch(batch_id), ["notify", "notify_each", "notified"]
        )
        if not url:
            return None
        return NotifyTarget(url, each == "job", int(finishes or 0))

    def known(self, webhook_id: str) -> bool:
        """The delivery was filed before (it is pending, or was sent within a day)."""
        return bool(self._redis.exists(self._keys.notification(webhook_id)))

    def file(self, webhook_id: str, url: str, body: str, *, lease_s: float, keep_s: int) -> bool:
        """File a delivery for its first attempt, due again `lease_s` from now unless its
        outcome is recorded first; False when that webhook id was filed before."""
        return self._scripts.file_notification(
            webhook_id, url=url, body=body, lease_s=lease_s, keep_s=keep_s
        )

    def claim_due(self, *, limit: int, lease_s: float) -> list[PendingDelivery]:
        """Up to `limit` deliveries due now, each re-filed `lease_s` later in the same step."""
        return [
            PendingDelivery(webhook_id, url, body, int(attempts))
            for webhook_id, url, body, attempts in self._scripts.claim_notifications(
                limit=limit, lease_s=lease_s
            )
        ]

    def sent(self, webhook_id: str) -> None:
        """The delivery succeeded: keep only a mark, for a day."""
        key = self._keys.notification(webhook_id)
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(key)
        pipe.hset(key, "sent", self._clock())
        pipe.expire(key, SENT_MARK_TTL_S)
        pipe.zrem(self._keys.notify_due, webhook_id)
        pipe.execute()

    def retry_at(self, webhook_id: str, *, attempts: int, at: float) -> None:
        """An attempt failed: `attempts` made so far, the next one due at `at`."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(self._keys.notification(webhook_id), "attempts", attempts)
        pipe.zadd(self._keys.notify_due, {webhook_id: at})
        pipe.execute()

    def drop(self, webhook_id: str) -> None:
        """Give up on a delivery: nothing of it is kept."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(self._keys.notification(webhook_id))
        pipe.zrem(self._keys.notify_due, webhook_id)
        pipe.execute()

    def pending(self) -> dict[str, float]:
        """Every delivery not yet sent, by webhook id, with when its next attempt is due."""
        return {
            str(webhook_id): float(score)
            for webhook_id, score in self._redis.zrange(
                self._keys.notify_due, 0, -1, withscores=True
            )
        }
