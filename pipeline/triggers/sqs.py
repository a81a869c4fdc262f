"""Storage events from an SQS queue: S3 → SQS, S3 → SNS → SQS, EventBridge → SQS.

A message is deleted only once every job its events make is in the ledger; a watcher
that dies before that leaves it to come back after the queue's visibility timeout, and
the second delivery records nothing twice (see `pipeline.triggers.intake`). While a
message is being worked on, its visibility timeout is extended. A message that is not a
storage event is logged and deleted: no delivery could ever make a job of it.

SNS signatures are not checked: the queue's access policy decides who may send to it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import Any

import boto3
from botocore.config import Config

from pipeline.errors import MalformedEvent
from pipeline.triggers.events import from_sqs_body
from pipeline.triggers.intake import TriggerIntake

log = logging.getLogger(__name__)

MAX_MESSAGES = 10  # SQS's most per receive
WAIT_TIME_S = 10
VISIBILITY_S = 60
EXTEND_EVERY_S = 20.0


def sqs_client() -> Any:
    """An SQS client configured the standard boto3 way (`AWS_ENDPOINT_URL_SQS`,
    `AWS_DEFAULT_REGION`, credentials), with reads longer than the long poll."""
    config = Config(read_timeout=WAIT_TIME_S + 20, retries={"mode": "standard"})
    return boto3.session.Session().client("sqs", config=config)


class SqsWatcher:
    """Receives, handles and deletes the messages of one queue."""

    def __init__(
        self,
        intake: TriggerIntake,
        queue_url: str,
        client: Any,
        *,
        visibility_s: int = VISIBILITY_S,
        extend_every_s: float = EXTEND_EVERY_S,
    ) -> None:
        self._intake = intake
        self._queue_url = queue_url
        self._sqs = client
        self._visibility_s = visibility_s
        self._extend_every_s = extend_every_s

    def poll(self) -> int:
        """One long-poll receive and its messages handled; the number of events."""
        response = self._sqs.receive_message(
            QueueUrl=self._queue_url,
            MaxNumberOfMessages=MAX_MESSAGES,
            WaitTimeSeconds=WAIT_TIME_S,
        )
        messages = response.get("Messages", [])
        handled: list[dict[str, Any]] = []
        events = 0
        try:
            with self._kept_invisible(messages):
                for message in messages:
                    events += self._handle(message)
                    handled.append(message)
        finally:
            self._delete(handled)
        return events

    def _handle(self, message: dict[str, Any]) -> int:
        try:
            events = from_sqs_body(message.get("Body", ""))
        except MalformedEvent as error:
            log.warning(
                "SQS message %s is not a storage event (%s); deleted",
                message.get("MessageId"),
                error,
            )
            return 0
        self._intake.handle(events)
        return len(events)

    def _delete(self, messages: list[dict[str, Any]]) -> None:
        if not messages:
            return
        entries = [
            {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
            for index, message in enumerate(messages)
        ]
        answer = self._sqs.delete_message_batch(QueueUrl=self._queue_url, Entries=entries)
        for failure in answer.get("Failed", []):
            # It comes back and is recognised as a duplicate.
            log.warning("SQS delete failed for a handled message: %s", failure.get("Message"))

    @contextlib.contextmanager
    def _kept_invisible(self, messages: list[dict[str, Any]]) -> Iterator[None]:
        """Extend the messages' visibility every `extend_every_s` while they are worked on."""
        if not messages:
            yield
            return
        done = threading.Event()
        keeper = threading.Thread(target=self._extend, args=(messages, done), daemon=True)
        keeper.start()
        try:
            yield
        finally:
            done.set()
            keeper.join()

    def _extend(self, messages: list[dict[str, Any]], done: threading.Event) -> None:
        entries = [
            {
                "Id": str(index),
                "ReceiptHandle": message["ReceiptHandle"],
                "VisibilityTimeout": self._visibility_s,
            }
            for index, message in enumerate(messages)
        ]
        while not done.wait(self._extend_every_s):
            try:
                self._sqs.change_message_visibility_batch(QueueUrl=self._queue_url, Entries=entries)
            except Exception as error:  # the message may come back: it is then a duplicate
                log.warning("SQS visibility not extended: %s", type(error).__name__)
