"""Fixtures of the receiver tests: a recorder on the test's own ledger, and what it queued."""

import pytest

from pipeline.ledger import Ledger
from pipeline.ledger.connection import async_redis_client
from pipeline.models import JobRef
from pipeline.recorder import CallbackRecorder


class Collects:
    """The collects a ledger's outbox holds, to be read back."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def read(self) -> list[tuple[JobRef, int]]:
        """Every collect queued so far, oldest first."""
        return [
            (entry.ref, entry.attempt)
            for entry in self._ledger.outbox.waiting()
            if entry.task == "collect"
        ]

    def clear(self) -> None:
        self._ledger.redis.delete(self._ledger.keys.outbox)


@pytest.fixture
def enqueued(ledger):
    return Collects(ledger)


@pytest.fixture
def recorder(valkey_url, ledger):
    return CallbackRecorder(lambda: async_redis_client(valkey_url), ledger.scripts.context)
