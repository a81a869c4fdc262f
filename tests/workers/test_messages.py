"""Ready-made task messages are the ones `send_task` would have queued."""

import json

import pytest

from pipeline.models import JobRef
from pipeline.settings import Settings
from workers.app import (
    QUEUE_COLLECT,
    QUEUE_SUBMIT,
    TASK_COLLECT,
    TASK_DISPATCH,
    TASK_SUBMIT,
    create_celery_app,
)
from workers.messages import BrokerOutbox

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]

# Fresh per message: ids and the transport's delivery tag.
FRESH = [("headers", "id"), ("headers", "root_id"), ("properties", "correlation_id")]
FRESH += [("properties", "delivery_tag")]


@pytest.fixture
def app(valkey_url):
    settings = Settings.from_environ(
        {
            "FILLPIPE_REDIS_URL": valkey_url,
            "FILLPIPE_PROVIDER_URL": "http://127.0.0.1:1",
            "FILLPIPE_PROVIDER_KEY": "test-provider-key",
            "FILLPIPE_PUBLIC_URL": "http://127.0.0.1:1",
            "FILLPIPE_SIGNING_KEY": "s" * 40,
        }
    )
    app = create_celery_app(settings)
    with app.connection_for_write() as connection:
        connection.default_channel.client.delete(QUEUE_COLLECT, QUEUE_SUBMIT)
    yield app
    with app.connection_for_write() as connection:
        connection.default_channel.client.delete(QUEUE_COLLECT, QUEUE_SUBMIT)


def sent_by_celery(app, queue: str, name: str, args: list) -> dict:
    app.send_task(name, args=args)
    with app.connection_for_write() as connection:
        (raw,) = connection.default_channel.client.lrange(queue, 0, -1)
    return json.loads(raw)


def mask_fresh_ids(ours: dict, theirs: dict) -> None:
    for part, name in FRESH:
        assert ours[part][name] != theirs[part][name]
        ours[part][name] = theirs[part][name] = "*"


@pytest.mark.parametrize(
    ("queue", "name", "args", "build"),
    [
        (
            QUEUE_COLLECT,
            TASK_COLLECT,
            ["b-1", "job 1+ü", 3],
            lambda o: o.collect(JobRef("b-1", "job 1+ü"), 3),
        ),
        (
            # A job id that spells a template's stand-in stays a job id.
            QUEUE_COLLECT,
            TASK_COLLECT,
            ["b-1", '"@@fillpipe-hole:task_id@@"', 1],
            lambda o: o.collect(JobRef("b-1", '"@@fillpipe-hole:task_id@@"'), 1),
        ),
        (QUEUE_SUBMIT, TASK_DISPATCH, [], lambda o: o.dispatch()),
        (
            QUEUE_SUBMIT,
            TASK_SUBMIT,
            ["b-2", "job 2", 4],
            lambda o: o.submit(JobRef("b-2", "job 2"), 4),
        ),
    ],
)
def test_messages_match_what_send_task_queues(app, queue, name, args, build):
    outbox = BrokerOutbox(app)
    queues = {
        TASK_COLLECT: outbox.collect_queue,
        TASK_DISPATCH: outbox.dispatch_queue,
        TASK_SUBMIT: outbox.submit_queue,
    }
    assert queues[name] == queue
    theirs = sent_by_celery(app, queue, name, args)
    ours = json.loads(build(outbox))
    mask_fresh_ids(ours, theirs)
    assert ours == theirs


def test_every_message_has_its_own_ids(app):
    outbox = BrokerOutbox(app)
    first, second = (json.loads(outbox.dispatch()) for _ in range(2))
    assert first["headers"]["id"] != second["headers"]["id"]
    assert first["properties"]["delivery_tag"] != second["properties"]["delivery_tag"]
    for message in (first, second):
        assert message["headers"]["id"] == message["headers"]["root_id"]
        assert message["headers"]["id"] == message["properties"]["correlation_id"]
