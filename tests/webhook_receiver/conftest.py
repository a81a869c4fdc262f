"""Fixtures of the receiver tests: a recorder on the session's Valkey, and its outbox."""

import pytest

from pipeline.recorder import CallbackRecorder


@pytest.fixture
def enqueued(outbox):
    return outbox


@pytest.fixture
def recorder(valkey_url, outbox):
    return CallbackRecorder.from_url(valkey_url, outbox)
