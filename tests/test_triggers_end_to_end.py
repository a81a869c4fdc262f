"""S3 triggers end to end: `fillpipe watch s3` against the embedded stack (SeaweedFS sends
no notifications), 200 photos and masks dropped at once, each stored exactly once; a
mask that lands 3 s after its image; outputs inside the rule's own prefix that never
retrigger it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from fillpipe.samples import make_samples
from pipeline.runtime import Runtime
from pipeline.states import JobState
from pipeline.storage import S3Uri
from pipeline.triggers.intake import rolling_batch_id
from tests.commands import run_fillpipe

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

PHOTOS = 200
LATE_MASK_S = 3.0
STOP_TIMEOUT_S = 30


@pytest.fixture
def prefix() -> str:
    return f"incoming-{uuid.uuid4().hex[:8]}/"


@pytest.fixture
def rules_file(tmp_path: Path, prefix: str, finetune_id: str) -> Path:
    path = tmp_path / "rules.toml"
    path.write_text(
        f"""
[[rules]]
name = "e2e{prefix[9:17]}"
bucket = "fillpipe"
prefix = "{prefix}"
suffix = ".png"
mask = "{{dir}}/{{stem}}.mask.png"
output = "s3://fillpipe/{prefix}edited/{{stem}}.{{ext}}"
prompt = "a glossy studio finish"
finetune_id = "{finetune_id}"
output_format = "png"
tags = {{ campaign = "spring" }}
"""
    )
    return path


@pytest.fixture
def watcher(stack, clean_environ, rules_file, prefix, tmp_path) -> Iterator[subprocess.Popen]:
    log = (tmp_path / "watch.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fillpipe",
            "watch",
            "s3",
            f"s3://fillpipe/{prefix}",
            "--rules",
            str(rules_file),
            "--interval-s",
            "0.5",
        ],
        env={**clean_environ, **stack.env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()


def wait_until(check, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_photos_dropped_in_the_bucket_come_out_edited_once(
    stack_rt: Runtime, watcher, prefix, rules_file
):
    rule = rules_file.read_text().split('name = "')[1].split('"')[0]
    cursor = stack_rt.ledger.triggers.listing("fillpipe", prefix)
    wait_until(lambda: cursor.started, 60, "the watcher's first listing")
    samples = make_samples(4, size_px=64)
    storage = stack_rt.storage

    def drop(n: int) -> None:
        sample = samples[n % 4]
        key = f"{prefix}p{n:03d} {sample.name}"
        storage.write(
            S3Uri("fillpipe", f"{key}.mask.png"), sample.mask_png, content_type="image/png"
        )
        storage.write(S3Uri("fillpipe", f"{key}.png"), sample.image_png, content_type="image/png")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(drop, range(PHOTOS)))
    late = f"{prefix}late"
    storage.write(S3Uri("fillpipe", f"{late}.png"), samples[0].image_png, content_type="image/png")
    time.sleep(LATE_MASK_S)
    storage.write(
        S3Uri("fillpipe", f"{late}.mask.png"), samples[0].mask_png, content_type="image/png"
    )

    batch = rolling_batch_id(rule, time.time())
    ledger = stack_rt.ledger

    def all_stored() -> bool:
        summary = ledger.batches.summary(batch)
        return summary is not None and summary.counts.get(JobState.STORED, 0) >= PHOTOS + 1

    wait_until(all_stored, 240, f"{PHOTOS + 1} stored jobs")
    time.sleep(2.0)  # a few more listings: the outputs must not come back as jobs

    summary = ledger.batches.summary(batch)
    assert summary is not None
    assert summary.counts == {JobState.STORED: PHOTOS + 1}
    assert summary.source == f"rule:{rule}"
    records = list(ledger.jobs.of_batch(batch))
    images = sorted(record.spec.image_uri for record in records)
    assert len(images) == len(set(images)) == PHOTOS + 1
    outputs = storage.client.list_objects_v2(Bucket="fillpipe", Prefix=f"{prefix}edited/")
    assert outputs["KeyCount"] == PHOTOS + 1
    stored = storage.fetch(S3Uri.parse(records[0].spec.output_uri))
    assert stored.tags["fillpipe-batch"] == batch
    assert stored.tags["campaign"] == "spring"

    watcher.send_signal(signal.SIGTERM)
    assert watcher.wait(STOP_TIMEOUT_S) == 0


def test_the_trigger_demo_drops_photos_and_shows_their_outputs(
    stack, stack_rt: Runtime, clean_environ, tmp_path
):
    result = run_fillpipe(
        "demo", "--trigger", "--jobs", "2", "--json", "--out", str(tmp_path),
        "--state-dir", str(tmp_path / "state"),
        env={**clean_environ, **stack.env},
    )  # fmt: skip

    assert result.returncode == 0, result.stderr[-2000:]
    document = json.loads(result.stdout)
    assert document["batch"] == rolling_batch_id("demo", time.time())
    assert document["stored"] == 2 and document["failed"] == 0
    for job in document["jobs"]:
        assert job["rule"] == "demo" and job["via"] == "listing"
        stored = stack_rt.storage.fetch(S3Uri.parse(job["output"]))
        assert stored.tags["fillpipe-batch"] == document["batch"]
    assert "dropped s3://" in result.stderr
