"""What the trigger bench drives: moto's S3 and SQS, `fillpipe watch sqs` as a process,
a bare SQS consumer (the baseline), and the intake alone on SeaweedFS."""

from __future__ import annotations

import io
import json
import multiprocessing
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import boto3
from PIL import Image

from bench.moto_server import REGION, MotoServer
from fillpipe.servers import S3Credentials, SeaweedS3Server
from pipeline.ledger import Ledger, redis_client
from pipeline.settings import Settings
from pipeline.storage import S3Uri, Storage
from pipeline.triggers.events import ObjectEvent
from pipeline.triggers.intake import TriggerIntake
from pipeline.triggers.rules import load_rules

BUCKET = "fillpipe"
PUT_THREADS = 16
WAIT_TIMEOUT_S = 300.0
EVENTS_PER_MESSAGE = 10
INTAKE_PROCESSES = (1, 2)


class Aws:
    """Clients of moto's S3 and SQS."""

    def __init__(self, moto: MotoServer) -> None:
        session = boto3.session.Session()
        options = dict(
            endpoint_url=moto.url,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        self.s3 = session.client("s3", **options)
        self.sqs = session.client("sqs", **options)

    def notifying_queue(self, bucket: str, name: str, *, prefix: str) -> str:
        url = self.sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        config: dict[str, Any] = {
            "QueueArn": arn["Attributes"]["QueueArn"],
            "Events": ["s3:ObjectCreated:*"],
        }
        if prefix:
            config["Filter"] = {"Key": {"FilterRules": [{"Name": "prefix", "Value": prefix}]}}
        self.s3.put_bucket_notification_configuration(
            Bucket=bucket, NotificationConfiguration={"QueueConfigurations": [config]}
        )
        return str(url)

    def put(self, bucket: str, key: str, body: bytes) -> float:
        """Put an object; when its PUT ended (epoch seconds)."""
        self.s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="image/png")
        return time.time()

    def drain_test_events(self, url: str) -> None:
        """Take out the s3:TestEvent that configuring the notification sent."""
        answer = self.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        for message in answer.get("Messages", []):
            self.sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    def waiting(self, url: str) -> int:
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        found = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
        return sum(int(found[name]) for name in names)


class Watcher:
    """`fillpipe watch sqs` in a subprocess, stopped with SIGTERM."""

    def __init__(self, queue: str, rules: Path, env: dict[str, str], log: Path, receivers: int):
        self.command = [
            sys.executable,
            "-m",
            "fillpipe",
            "watch",
            "sqs",
            queue,
            "--rules",
            str(rules),
            "--receivers",
            str(receivers),
        ]
        self.env, self.log = env, log

    def __enter__(self) -> Watcher:
        self._log = self.log.open("wb")
        self.process = subprocess.Popen(
            self.command, env=self.env, stdout=self._log, stderr=subprocess.STDOUT
        )
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


def bare_consume(aws: Aws, url: str, receivers: int, expected: int) -> int:
    """Receive, HEAD each message's object (the least a consumer that checks what it
    is told does) and delete, until `expected` messages (TestEvents aside) are consumed."""
    lock, consumed = threading.Lock(), [0]

    def consume() -> None:
        while True:
            with lock:
                if consumed[0] >= expected:
                    return
            answer = aws.sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            )
            messages = answer.get("Messages", [])
            for message in messages:
                for record in json.loads(message["Body"]).get("Records", []):
                    key = unquote_plus(record["s3"]["object"]["key"])
                    aws.s3.head_object(Bucket=record["s3"]["bucket"]["name"], Key=key)
            if not messages:
                continue
            entries = [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
            ]
            aws.sqs.delete_message_batch(QueueUrl=url, Entries=entries)
            with lock:
                consumed[0] += sum("TestEvent" not in m["Body"] for m in messages)

    threads = [threading.Thread(target=consume) for _ in range(receivers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_TIMEOUT_S)
    return consumed[0]


def intake_capacity(
    args: Any,
    tmp: Path,
    base: Mapping[str, str],
    stack_env: Mapping[str, str],
    rules: Path,
) -> dict[int, float]:
    """Events/s of the intake itself, its events already received, in 1 and 2 processes
    (as 1 or 2 watchers on one queue): objects on a fast S3 (SeaweedFS), recorded in a
    ledger of their own (its dispatcher's work goes nowhere), `args.receivers` threads a
    process, each handing on a message's worth of events at a time."""
    s3 = SeaweedS3Server(
        tmp / "seaweed",
        tmp / "seaweed.log",
        credentials=S3Credentials.load_or_create(tmp / "seaweed-credentials"),
        bucket=BUCKET,
        environ=dict(base),
    )
    s3.start(timeout_s=60)
    try:
        env = {**stack_env, **s3.env}
        keys = _seed_objects(Storage.from_settings(Settings.from_environ(env)), args.objects)
        return {
            processes: _intake_rate(env, rules, keys, processes, args.receivers)
            for processes in INTAKE_PROCESSES
        }
    finally:
        s3.stop()


def _intake_rate(
    env: Mapping[str, str], rules: Path, events: list[ObjectEvent], processes: int, threads: int
) -> float:
    """Events/s of `processes` intakes sharing `events`, timed once every one is ready."""
    # Spawned, not forked: this process has threads (and their locks) to leave behind.
    context = multiprocessing.get_context("spawn")
    ready, go = context.Barrier(processes + 1), context.Event()
    workers = [
        context.Process(
            target=_intake_process,
            args=(dict(env), rules, events[index::processes], threads, ready, go, index),
        )
        for index in range(processes)
    ]
    for worker in workers:
        worker.start()
    ready.wait()
    started = time.monotonic()
    go.set()
    for worker in workers:
        worker.join()
    elapsed = time.monotonic() - started
    if any(worker.exitcode for worker in workers):
        raise SystemExit("an intake process failed")
    return len(events) / elapsed


def _intake_process(
    env: dict[str, str],
    rules: Path,
    events: list[ObjectEvent],
    threads: int,
    ready: Any,
    go: Any,
    index: int,
) -> None:
    """One watcher's intake, with clients of its own, over its share of the events."""
    settings = Settings.from_environ(env)
    prefix = f"bench-intake-{index}-{time.time_ns()}:"
    ledger = Ledger(redis_client(settings.redis_url), slots=24, prefix=prefix)
    storage = Storage.from_settings(settings)
    intake = TriggerIntake(load_rules(rules), ledger=ledger, storage=storage, mask_wait_s=60)
    storage.head(S3Uri(BUCKET, events[0].key))  # connections open before the clock starts
    messages = [
        events[i : i + EVENTS_PER_MESSAGE] for i in range(0, len(events), EVENTS_PER_MESSAGE)
    ]
    ready.wait()
    go.wait()
    with ThreadPoolExecutor(threads) as pool:
        outcomes = [o for done in pool.map(intake.handle, messages) for o in done]
    ledger.redis.delete(*ledger.redis.keys(f"{prefix}*"))
    ledger.close()
    if sum(outcome.created for outcome in outcomes) != len(events):
        raise SystemExit(f"the intake made fewer jobs than its {len(events)} events")


def _seed_objects(storage: Storage, count: int) -> list[ObjectEvent]:
    """`count` photos under the burst rule's prefix, and the events S3 would send."""
    keys = [f"incoming/burst/c{n:05d}.png" for n in range(count)]
    photo = rgba_photo()

    def put(key: str) -> None:
        storage.write(S3Uri(BUCKET, key), photo, content_type="image/png")

    with ThreadPoolExecutor(PUT_THREADS) as pool:
        list(pool.map(put, keys))
    head = storage.head(S3Uri(BUCKET, keys[0]))
    etag = head.etag if head else None
    return [ObjectEvent(BUCKET, key, etag=etag, origin="bench") for key in keys]


def rgba_photo(size_px: int = 64) -> bytes:
    """A small photo whose transparent square is the area to repaint."""
    image = Image.new("RGBA", (size_px, size_px), (180, 60, 40, 255))
    image.paste((0, 0, 0, 0), (size_px // 4, size_px // 4, size_px * 3 // 4, size_px * 3 // 4))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
