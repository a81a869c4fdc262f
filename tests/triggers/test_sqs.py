"""The SQS watcher against moto's server, whose S3 sends real notifications: straight
to SQS, through SNS, and through EventBridge."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from bench.moto_server import MotoServer
from pipeline.ledger import Ledger
from pipeline.settings import Settings
from pipeline.states import JobState
from pipeline.storage import Storage
from pipeline.triggers.events import from_sqs_body
from pipeline.triggers.intake import TriggerIntake, rolling_batch_id
from pipeline.triggers.rules import parse_rules
from pipeline.triggers.sqs import SqsWatcher
from tests.pipeline.fakes import png
from tests.triggers.conftest import aws_client, retouch_rule

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

CREATED = ["s3:ObjectCreated:*"]


class Wiring:
    """A bucket of this test's own on moto, notifying one queue by one route."""

    def __init__(self, server: MotoServer, route: str) -> None:
        self.bucket = f"photos-{uuid.uuid4().hex[:10]}"
        self.s3 = aws_client(server, "s3")
        self.sqs = aws_client(server, "sqs")
        self.s3.create_bucket(Bucket=self.bucket)
        self.queue_url = self.sqs.create_queue(QueueName=self.bucket)["QueueUrl"]
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=["QueueArn"]
        )
        self.queue_arn = attributes["Attributes"]["QueueArn"]
        getattr(self, f"_via_{route}")(server)

    def _via_sqs(self, server: MotoServer) -> None:
        config = {"QueueConfigurations": [{"QueueArn": self.queue_arn, "Events": CREATED}]}
        self.s3.put_bucket_notification_configuration(
            Bucket=self.bucket, NotificationConfiguration=config
        )

    def _via_sns(self, server: MotoServer) -> None:
        sns = aws_client(server, "sns")
        topic = sns.create_topic(Name=self.bucket)["TopicArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=self.queue_arn)
        config = {"TopicConfigurations": [{"TopicArn": topic, "Events": CREATED}]}
        self.s3.put_bucket_notification_configuration(
            Bucket=self.bucket, NotificationConfiguration=config
        )

    def _via_eventbridge(self, server: MotoServer) -> None:
        events = aws_client(server, "events")
        pattern = {
            "source": ["aws.s3"],
            "detail-type": ["Object Created"],
            "detail": {"bucket": {"name": [self.bucket]}},
        }
        events.put_rule(Name=self.bucket, EventPattern=json.dumps(pattern))
        events.put_targets(Rule=self.bucket, Targets=[{"Id": "fillpipe", "Arn": self.queue_arn}])
        self.s3.put_bucket_notification_configuration(
            Bucket=self.bucket, NotificationConfiguration={"EventBridgeConfiguration": {}}
        )

    def put(self, key: str, body: bytes | None = None) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body or png(mode="RGBA"))

    def left_in_queue(self) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(
            attributes["ApproximateNumberOfMessagesNotVisible"]
        )


@pytest.fixture
def ledger(moto_settings: Settings) -> Iterator[Ledger]:
    own = Ledger.from_settings(moto_settings)
    yield own
    own.close()


def make_watcher(
    settings: Settings, ledger: Ledger, wiring: Wiring
) -> tuple[SqsWatcher, TriggerIntake]:
    rules = parse_rules(
        retouch_rule("incoming/", bucket=wiring.bucket, mask="alpha"), source="rules.toml"
    )
    intake = TriggerIntake(
        rules, ledger=ledger, storage=Storage.from_settings(settings), mask_wait_s=60
    )
    return SqsWatcher(intake, wiring.queue_url, wiring.sqs), intake


def drain(watcher: SqsWatcher, wiring: Wiring, polls: int = 10) -> None:
    for _ in range(polls):
        watcher.poll()
        if wiring.left_in_queue() == 0:
            return


def jobs(ledger: Ledger) -> dict[str, JobState]:
    batch = rolling_batch_id("retouch", time.time())
    return {record.spec.image_uri: record.state for record in ledger.jobs.of_batch(batch)}


KEYS = ["incoming/a b.png", "incoming/c+d.png", "incoming/50%.png", "incoming/ü/ñ.png"]


@pytest.mark.parametrize("route", ["sqs", "sns", "eventbridge"])
def test_objects_put_in_s3_become_jobs_and_their_messages_are_deleted(
    moto_server, moto_settings, ledger, route
):
    wiring = Wiring(moto_server, route)
    watcher, _ = make_watcher(moto_settings, ledger, wiring)
    for key in [*KEYS, "incoming/notes.txt", "elsewhere/x.png"]:
        wiring.put(key)

    drain(watcher, wiring)

    assert jobs(ledger) == {f"s3://{wiring.bucket}/{key}": JobState.DISPATCHED for key in KEYS}
    assert wiring.left_in_queue() == 0


def test_a_message_received_but_never_deleted_comes_back_and_makes_its_job_once(
    moto_server, moto_settings, ledger
):
    wiring = Wiring(moto_server, "sqs")
    watcher, intake = make_watcher(moto_settings, ledger, wiring)
    wiring.put("incoming/first.png")
    wiring.put("incoming/second.png")
    # A watcher that dies after recording the first message's job, before deleting it.
    received = receive_all(wiring)
    first = next(m for m in received if "first.png" in m["Body"])
    intake.handle(from_sqs_body(first["Body"]))
    release(wiring, received)

    drain(watcher, wiring)

    assert jobs(ledger) == {
        f"s3://{wiring.bucket}/incoming/first.png": JobState.DISPATCHED,
        f"s3://{wiring.bucket}/incoming/second.png": JobState.DISPATCHED,
    }
    assert len(list(ledger.jobs.of_batch(rolling_batch_id("retouch", time.time())))) == 2
    assert wiring.left_in_queue() == 0


def test_a_message_that_is_not_a_storage_event_is_deleted(moto_server, moto_settings, ledger):
    wiring = Wiring(moto_server, "sqs")
    watcher, _ = make_watcher(moto_settings, ledger, wiring)
    wiring.sqs.send_message(QueueUrl=wiring.queue_url, MessageBody="hello")

    drain(watcher, wiring)

    assert wiring.left_in_queue() == 0
    assert jobs(ledger) == {}


def receive_all(wiring: Wiring) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    for _ in range(5):
        answer = wiring.sqs.receive_message(
            QueueUrl=wiring.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        )
        messages += answer.get("Messages", [])
        if wiring.left_in_queue() == len(messages):
            break
    return messages


def release(wiring: Wiring, messages: list[dict[str, Any]]) -> None:
    """Their visibility timeout runs out now (as it does after a watcher dies)."""
    for message in messages:
        wiring.sqs.change_message_visibility(
            QueueUrl=wiring.queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
        )


class SlowIntake:
    """The intake, taking `delay_s` longer over each message (a slow S3, say)."""

    def __init__(self, intake: TriggerIntake, delay_s: float) -> None:
        self._intake = intake
        self._delay_s = delay_s

    def handle(self, events):  # type: ignore[no-untyped-def]
        time.sleep(self._delay_s)
        return self._intake.handle(events)


def test_a_message_stays_invisible_while_it_is_worked_on_past_its_timeout(
    moto_server, moto_settings, ledger
):
    wiring = Wiring(moto_server, "sqs")
    wiring.sqs.set_queue_attributes(
        QueueUrl=wiring.queue_url, Attributes={"VisibilityTimeout": "1"}
    )
    _, intake = make_watcher(moto_settings, ledger, wiring)
    watcher = SqsWatcher(
        SlowIntake(intake, 3.0), wiring.queue_url, wiring.sqs, visibility_s=3, extend_every_s=0.3
    )
    for test_event in receive_all(wiring):  # the configuration's TestEvent, out of the way
        wiring.sqs.delete_message(
            QueueUrl=wiring.queue_url, ReceiptHandle=test_event["ReceiptHandle"]
        )
    wiring.put("incoming/slow.png")

    other_receives: list[str] = []

    def look() -> None:
        time.sleep(1.5)  # past the queue's 1 s timeout
        answer = wiring.sqs.receive_message(QueueUrl=wiring.queue_url, WaitTimeSeconds=1)
        other_receives.extend(message["Body"] for message in answer.get("Messages", []))

    spy = threading.Thread(target=look)
    spy.start()
    watcher.poll()
    spy.join()

    assert other_receives == []
    assert jobs(ledger) == {f"s3://{wiring.bucket}/incoming/slow.png": JobState.DISPATCHED}
    assert wiring.left_in_queue() == 0
