"""Fixtures of the receiver tests: a recorder on the session's Valkey, and its outbox."""

import pytest

from pipeline.recorder import CallbackRecorder
from tests.webhook_receiver.outbox import ListOutbox


@pytest.fixture
def enqueued(valkey_url):
    outbox = ListOutbox(valkey_url)
    yield outbox
    outbox.close()


@pytest.fixture
def recorder(valkey_url, enqueued):
    return CallbackRecorder.from_url(valkey_url, enqueued)
