"""Celery task messages as ready Redis list entries, for scripts that queue work.

The receiver's ledger script queues a collect (and a dispatch) in the same round trip
that records a callback, so it needs the message a `send_task` would have LPUSHed,
built beforehand. Celery builds the task message (`app.amqp.create_task_message`,
protocol 2) and kombu's serializer its body; this module adds kombu's Redis envelope,
as the virtual transport's `basic_publish` does for the default exchange. A test
compares the result with what `send_task` stores, field by field, and a real worker
runs the tasks queued this way.
"""

from __future__ import annotations

import json
import uuid
from base64 import b64encode
from typing import Any

from celery import Celery
from kombu.serialization import dumps

from pipeline.models import JobRef
from workers.app import QUEUE_COLLECT, QUEUE_SUBMIT, TASK_COLLECT, TASK_DISPATCH

# kombu's Redis transport: persistent delivery, priority 0 (the queue's plain list key).
DELIVERY_MODE_PERSISTENT = 2
DEFAULT_PRIORITY = 0


class BrokerOutbox:
    """Collect and dispatch messages for `pipeline.recorder` (its `Outbox`)."""

    collect_queue = QUEUE_COLLECT
    dispatch_queue = QUEUE_SUBMIT

    def __init__(self, app: Celery) -> None:
        self._app = app

    def __repr__(self) -> str:
        return "BrokerOutbox()"

    def collect(self, ref: JobRef, attempt: int) -> str:
        return task_message(self._app, TASK_COLLECT, [ref.batch_id, ref.job_id, attempt])

    def dispatch(self) -> str:
        return task_message(self._app, TASK_DISPATCH, [])


def task_message(app: Celery, name: str, args: list[Any]) -> str:
    """The Redis list entry that `app.send_task(name, args=args)` would push."""
    task_id = str(uuid.uuid4())
    queue = app.amqp.router.route({}, name)["queue"].name
    message = app.amqp.create_task_message(
        task_id,
        name,
        args,
        {},
        reply_to=app.thread_oid,
        argsrepr=repr(args or ()),  # as Celery writes no arguments
        kwargsrepr="{}",
        ignore_result=None,  # as send_task leaves it: the app's setting decides
    )
    content_type, content_encoding, body = dumps(message.body, serializer="json")
    properties = {
        **message.properties,
        "delivery_mode": DELIVERY_MODE_PERSISTENT,
        "delivery_info": {"exchange": "", "routing_key": queue},
        "priority": DEFAULT_PRIORITY,
        "body_encoding": "base64",
        "delivery_tag": str(uuid.uuid4()),
    }
    envelope = {
        "body": b64encode(body.encode() if isinstance(body, str) else body).decode(),
        "content-encoding": content_encoding,
        "content-type": content_type,
        "headers": message.headers,
        "properties": properties,
    }
    return json.dumps(envelope)
