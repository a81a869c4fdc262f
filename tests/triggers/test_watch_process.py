"""`fillpipe watch` as a process: killed between receiving and deleting, it loses
nothing and records nothing twice; through a Redis restart it keeps going."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.moto_server import MotoServer
from fillpipe.servers import ValkeyServer
from pipeline.ledger import Ledger
from pipeline.settings import Settings
from pipeline.storage import S3Uri, Storage
from pipeline.triggers.intake import rolling_batch_id
from tests.conftest import hermetic_environ
from tests.pipeline.fakes import png
from tests.triggers.conftest import SETTINGS_ENV, aws_client, retouch_rule

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

PHOTOS = 40
OUTAGE_S = 3.0


def watch(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "fillpipe", "watch", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def stop(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(60)


def wait_until(check, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def batch_total(ledger: Ledger) -> int:
    summary = ledger.batches.summary(rolling_batch_id("retouch", time.time()))
    return 0 if summary is None else summary.total


def test_a_watcher_killed_mid_stream_loses_nothing_and_records_nothing_twice(
    moto_server: MotoServer, moto_settings: Settings, tmp_path: Path, clean_environ
):
    bucket = f"photos-{uuid.uuid4().hex[:10]}"
    s3, sqs = aws_client(moto_server, "s3"), aws_client(moto_server, "sqs")
    s3.create_bucket(Bucket=bucket)
    # Messages a dead watcher received come back after 2 s.
    queue = sqs.create_queue(QueueName=bucket, Attributes={"VisibilityTimeout": "2"})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
    config = {"QueueArn": arn["Attributes"]["QueueArn"], "Events": ["s3:ObjectCreated:*"]}
    s3.put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration={"QueueConfigurations": [config]}
    )
    rules = tmp_path / "rules.toml"
    rules.write_text(retouch_rule("incoming/", bucket=bucket, mask="alpha"))
    env = {
        **clean_environ,
        **moto_server.env,
        **SETTINGS_ENV,
        "FILLPIPE_REDIS_URL": moto_settings.redis_url,
    }
    ledger = Ledger.from_settings(moto_settings)
    for n in range(PHOTOS):
        s3.put_object(Bucket=bucket, Key=f"incoming/p{n:03d}.png", Body=png(mode="RGBA"))

    log = tmp_path / "watch.log"
    first = watch(["sqs", queue, "--rules", str(rules), "--receivers", "2"], env, log)
    wait_until(lambda: batch_total(ledger) > 0, 60, "the first jobs")
    first.send_signal(signal.SIGKILL)
    first.wait(30)
    assert batch_total(ledger) < PHOTOS, "the watcher finished before it was killed"

    second = watch(["sqs", queue, "--rules", str(rules), "--receivers", "2"], env, log)
    try:
        wait_until(lambda: batch_total(ledger) >= PHOTOS, 90, f"{PHOTOS} jobs")
        time.sleep(3)  # the killed watcher's messages come back, and are duplicates
    finally:
        assert stop(second) == 0, log.read_text()[-2000:]

    records = list(ledger.jobs.of_batch(rolling_batch_id("retouch", time.time())))
    images = [record.spec.image_uri for record in records]
    assert sorted(images) == [f"s3://{bucket}/incoming/p{n:03d}.png" for n in range(PHOTOS)]
    ledger.close()


@pytest.fixture
def own_valkey(tmp_path: Path) -> Iterator[ValkeyServer]:
    server = ValkeyServer(tmp_path / "valkey", tmp_path / "valkey.log", environ=hermetic_environ())
    server.start(timeout_s=30)
    try:
        yield server
    finally:
        server.stop()


def test_a_listing_watcher_waits_out_a_redis_outage(
    own_valkey: ValkeyServer, s3_env: dict[str, str], tmp_path: Path, clean_environ
):
    prefix = f"outage-{uuid.uuid4().hex[:8]}/"
    rules = tmp_path / "rules.toml"
    rules.write_text(retouch_rule(prefix, mask="alpha"))
    env = {**clean_environ, **s3_env, **SETTINGS_ENV, "FILLPIPE_REDIS_URL": own_valkey.url}
    settings = Settings.from_environ(env)
    storage = Storage.from_settings(settings)
    log = tmp_path / "watch.log"
    watcher = watch(
        ["s3", f"s3://fillpipe/{prefix}", "--rules", str(rules), "--interval-s", "0.2"], env, log
    )
    try:
        ledger = Ledger.from_settings(settings)
        wait_until(lambda: ledger.triggers.listing("fillpipe", prefix).started, 60, "a listing")
        own_valkey.stop()
        storage.write(
            S3Uri("fillpipe", f"{prefix}a.png"), png(mode="RGBA"), content_type="image/png"
        )
        time.sleep(OUTAGE_S)
        own_valkey.start(timeout_s=30)  # same port, same data

        wait_until(lambda: batch_total(ledger) == 1, 60, "the job, after the outage")
        assert watcher.poll() is None
    finally:
        assert stop(watcher) == 0, log.read_text()[-2000:]
    ledger.close()
