"""The outbox relay on a real Valkey: entries become Celery task messages, each once,
and entries a dead relay had read are published by another."""

import threading

import pytest
from kombu import Connection

from pipeline.ledger import Ledger
from pipeline.models import JobRef
from pipeline.settings import Settings
from workers.app import QUEUE_COLLECT, QUEUE_SUBMIT, TASK_COLLECT, TASK_SUBMIT, create_celery_app
from workers.relay import OutboxRelay

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@pytest.fixture
def app(valkey_url):
    """A Celery app on the session's Valkey, with no worker consuming its queues."""
    settings = Settings.from_environ(
        {
            "FILLPIPE_REDIS_URL": valkey_url,
            "FILLPIPE_PROVIDER_URL": "http://127.0.0.1:1",
            "FILLPIPE_PROVIDER_KEY": "test-provider-key",
            "FILLPIPE_PUBLIC_URL": "http://127.0.0.1:1",
            "FILLPIPE_SIGNING_KEY": "s" * 40,
        }
    )
    celery_app = create_celery_app(settings)
    _drain(valkey_url, QUEUE_SUBMIT)
    _drain(valkey_url, QUEUE_COLLECT)
    yield celery_app
    celery_app.close()


def queue_entry(ledger: Ledger, task: str, ref: JobRef, attempt: int) -> None:
    """An outbox entry, as the ledger's scripts write it."""
    fields = {"task": task, "batch": ref.batch_id, "job": ref.job_id, "attempt": attempt}
    ledger.redis.xadd(ledger.keys.outbox, fields)


def _drain(url: str, queue: str) -> list[tuple[str, list]]:
    """The task messages waiting in `queue` (name and arguments), taken off it."""
    taken = []
    with Connection(url) as connection, connection.SimpleQueue(queue) as simple:
        while True:
            try:
                message = simple.get(block=False)
            except simple.Empty:
                return taken
            args, _, _ = message.decode()
            taken.append((message.headers["task"], args))
            message.ack()


def test_each_entry_becomes_one_task_message_on_its_queue(app, ledger, valkey_url):
    refs = [JobRef("b1", "mug:01"), JobRef("b1", "tote 02")]
    queue_entry(ledger, "submit", refs[0], 1)
    queue_entry(ledger, "collect", refs[1], 3)
    relay = OutboxRelay(app, ledger.outbox, "relay-a")

    assert relay.relay_once(block_s=0.1) == 2

    assert _drain(valkey_url, QUEUE_SUBMIT) == [(TASK_SUBMIT, ["b1", "mug:01", 1])]
    assert _drain(valkey_url, QUEUE_COLLECT) == [(TASK_COLLECT, ["b1", "tote 02", 3])]
    assert ledger.outbox.waiting() == []  # published entries are deleted
    assert relay.relay_once(block_s=0.1) == 0


def test_entries_a_dead_relay_read_are_published_by_another(app, ledger, valkey_url):
    ref = JobRef("b1", "mug-01")
    queue_entry(ledger, "submit", ref, 1)
    ledger.outbox.ensure_group()
    read = ledger.outbox.read("relay-dead", block_s=0.1, count=10)  # ...then it died
    assert [entry.ref for entry in read] == [ref]
    assert _drain(valkey_url, QUEUE_SUBMIT) == []

    survivor = OutboxRelay(app, ledger.outbox, "relay-b", abandoned_after_s=0)
    assert survivor.relay_once(block_s=0.1) == 1

    assert _drain(valkey_url, QUEUE_SUBMIT) == [(TASK_SUBMIT, ["b1", "mug-01", 1])]
    assert ledger.outbox.waiting() == []


def test_a_running_relay_publishes_entries_as_they_come_and_stops_cleanly(app, ledger, valkey_url):
    relay = OutboxRelay(app, ledger.outbox, "relay-c")
    stop = threading.Event()
    running = threading.Thread(target=relay.run, args=(stop,))
    running.start()
    try:
        queue_entry(ledger, "collect", JobRef("b2", "j1"), 1)
        published: list = []
        for _ in range(100):
            published += _drain(valkey_url, QUEUE_COLLECT)
            if published:
                break
            stop.wait(0.05)
    finally:
        stop.set()
        running.join(timeout=10)
    assert published == [(TASK_COLLECT, ["b2", "j1", 1])]
    assert not running.is_alive()
    consumers = ledger.redis.xinfo_consumers(ledger.keys.outbox, "relay")
    assert "relay-c" not in {consumer["name"] for consumer in consumers}
