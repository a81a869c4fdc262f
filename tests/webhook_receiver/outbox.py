"""An outbox for receiver tests whose messages can be read back."""

import json
import uuid

from pipeline.ledger import redis_client
from pipeline.models import JobRef


class ListOutbox:
    """Collect messages as JSON `[batch, job, attempt]` on lists of this test's own."""

    def __init__(self, url: str) -> None:
        self._redis = redis_client(url)
        prefix = f"test-outbox:{uuid.uuid4().hex}"
        self.collect_queue = f"{prefix}:collect"
        self.dispatch_queue = f"{prefix}:dispatch"

    def collect(self, ref: JobRef, attempt: int) -> str:
        return json.dumps([ref.batch_id, ref.job_id, attempt])

    def dispatch(self) -> str:
        return "dispatch"

    def read(self) -> list[tuple[JobRef, int]]:
        """The collects queued so far, oldest first."""
        queued = reversed(self._redis.lrange(self.collect_queue, 0, -1))
        return [(JobRef(batch, job), attempt) for batch, job, attempt in map(json.loads, queued)]

    def dispatches(self) -> int:
        return int(self._redis.llen(self.dispatch_queue))

    def clear(self) -> None:
        self._redis.delete(self.collect_queue, self.dispatch_queue)

    def close(self) -> None:
        self.clear()
        self._redis.close()
