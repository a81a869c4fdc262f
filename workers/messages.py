"""Celery task messages as ready Redis list entries, for scripts that queue work.

The receiver's ledger script queues a collect (and a dispatch) in the same round trip
that records a callback, so it needs the message a `send_task` would have LPUSHed,
built beforehand. Workers queue the submits of the jobs they dispatch the same way, all
in one LPUSH: a burst of 23 costs ~1 ms of CPU, where `send_task` took ~14 ms. Celery
builds the task message (`app.amqp.create_task_message`, protocol 2), the body is JSON
as kombu's json serializer writes it, and this module adds kombu's Redis envelope, as
the virtual transport's `basic_publish` does for the default exchange.

Celery builds each task's message once (`TaskMessage`); every message after that
fills in only what changes from one to the next: the task id, the delivery tag and the
arguments. A test compares the result with what `send_task` stores, field by field,
and a real worker runs the tasks queued this way.
"""

from __future__ import annotations

import json
import random
import re
import uuid
from base64 import b64encode
from collections.abc import Sequence
from typing import Any

from celery import Celery
from kombu.serialization import dumps

from pipeline.models import JobRef
from workers.app import QUEUE_COLLECT, QUEUE_SUBMIT, TASK_COLLECT, TASK_DISPATCH, TASK_SUBMIT

# kombu's Redis transport: persistent delivery, priority 0 (the queue's plain list key).
DELIVERY_MODE_PERSISTENT = 2
DEFAULT_PRIORITY = 0
SERIALIZER = "json"

# Stand-ins for the parts of a message that change from one to the next.
_HOLE = {
    name: f"@@fillpipe-hole:{name}@@" for name in ("task_id", "delivery_tag", "argsrepr", "body")
}
_HOLES = re.compile('"@@fillpipe-hole:([a-z_]+)@@"')


class TaskMessage:
    """The Redis list entry `app.send_task(name, args=...)` would push, for any args.

    Celery builds the message once, with a stand-in for each part that changes from one
    message to the next: the task id (wherever Celery put it: headers `id` and
    `root_id`, property `correlation_id`), the delivery tag, the body and the
    arguments' repr. The envelope is serialized once too, and each call puts the JSON
    of the fresh parts where the stand-ins were: the same text `json.dumps` would
    give, in one pass, so nothing in the arguments can be read as a stand-in.
    """

    def __init__(self, app: Celery, name: str) -> None:
        queue = app.amqp.router.route({}, name)["queue"].name
        message = app.amqp.create_task_message(
            _HOLE["task_id"],
            name,
            (),
            {},
            reply_to=app.thread_oid,
            argsrepr=_HOLE["argsrepr"],
            kwargsrepr="{}",
            ignore_result=None,  # as send_task leaves it: the app's setting decides
        )
        _, self._kwargs, self._embed = message.body
        content_type, content_encoding, _ = dumps(message.body, serializer=SERIALIZER)
        envelope = {
            "body": _HOLE["body"],
            "content-encoding": content_encoding,
            "content-type": content_type,
            "headers": message.headers,
            "properties": {
                **message.properties,
                "delivery_mode": DELIVERY_MODE_PERSISTENT,
                "delivery_info": {"exchange": "", "routing_key": queue},
                "priority": DEFAULT_PRIORITY,
                "body_encoding": "base64",
                "delivery_tag": _HOLE["delivery_tag"],
            },
        }
        # Even positions: fixed JSON text; odd positions: the name of a hole.
        self._parts = _HOLES.split(json.dumps(envelope))
        self._name = name

    def __repr__(self) -> str:
        return f"TaskMessage({self._name!r})"

    def __call__(self, args: Sequence[Any] = ()) -> str:
        arguments = list(args)
        # kombu's json serializer is `json.dumps` with an encoder for types (dates,
        # UUIDs) no task argument of ours has; bare, it gives the same text faster.
        body = json.dumps((arguments, self._kwargs, self._embed))
        # uuids and base64 need no JSON escaping; the repr (of job ids) does.
        fresh = {
            "task_id": f'"{_new_id()}"',
            "delivery_tag": f'"{_new_id()}"',
            "argsrepr": json.dumps(repr(arguments or ())),  # as Celery writes no arguments
            "body": f'"{b64encode(body.encode()).decode()}"',
        }
        parts = self._parts
        return "".join(part if i % 2 == 0 else fresh[part] for i, part in enumerate(parts))


class BrokerOutbox:
    """Collect and dispatch messages for `pipeline.recorder` (its `Outbox`), and submit
    messages for the workers' dispatcher."""

    collect_queue = QUEUE_COLLECT
    dispatch_queue = QUEUE_SUBMIT
    submit_queue = QUEUE_SUBMIT

    def __init__(self, app: Celery) -> None:
        self._collect = TaskMessage(app, TASK_COLLECT)
        self._dispatch = TaskMessage(app, TASK_DISPATCH)
        self._submit = TaskMessage(app, TASK_SUBMIT)

    def __repr__(self) -> str:
        return "BrokerOutbox()"

    def collect(self, ref: JobRef, attempt: int) -> str:
        return self._collect((ref.batch_id, ref.job_id, attempt))

    def dispatch(self) -> str:
        return self._dispatch()

    def submit(self, ref: JobRef, attempt: int) -> str:
        return self._submit((ref.batch_id, ref.job_id, attempt))

    @staticmethod
    def is_submit(raw: str | bytes) -> bool:
        """Whether `raw`, a message as queued (dispatch messages share the submit
        queue), is a submit message."""
        return bool(json.loads(raw)["headers"]["task"] == TASK_SUBMIT)


def _new_id() -> str:
    """A random UUID, as `uuid.uuid4()` makes, without its system call per id (a
    receiver makes two per callback): `random`'s generator is seeded from the system's
    and reseeded in every forked child, so ids stay unique across processes. Task ids
    and delivery tags need to be unique, not secret."""
    return str(uuid.UUID(int=random.getrandbits(128), version=4))
