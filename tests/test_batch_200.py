"""A 200-job batch end to end: every output present, tagged, and listed in results.jsonl."""

import json

import pytest

from fillpipe.samples import make_samples
from pipeline.states import JobState
from pipeline.storage import S3Uri
from tests.commands import run_fillpipe

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

JOBS = 200


def test_two_hundred_jobs_all_stored_tagged_and_reported(
    stack, stack_rt, clean_environ, finetune_id, tmp_path
):
    samples = make_samples(4, size_px=64)
    for sample in samples:
        (tmp_path / f"{sample.name}.png").write_bytes(sample.image_png)
        (tmp_path / f"{sample.name}-mask.png").write_bytes(sample.mask_png)
    rows = [
        {
            "id": f"job-{n:03d}",
            "image": f"{samples[n % 4].name}.png",
            "mask": f"{samples[n % 4].name}-mask.png",
            "prompt": samples[n % 4].prompt,
            "finetune_id": finetune_id,
            "seed": n,
            "tags": {"wave": str(n % 3)},
        }
        for n in range(JOBS)
    ]
    manifest = tmp_path / "batch.jsonl"
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))

    result = run_fillpipe("submit", str(manifest), "--wait", env={**clean_environ, **stack.env})

    assert result.returncode == 0, result.stderr[-2000:]
    batch_id = result.stdout.strip().splitlines()[-1]
    assert stack_rt.ledger.batches.summary(batch_id).counts == {JobState.STORED: JOBS}
    bucket = stack_rt.settings.bucket
    listed = stack_rt.storage.client.list_objects_v2(
        Bucket=bucket, Prefix=f"outputs/{batch_id}/", MaxKeys=1000
    )["Contents"]
    keys = {item["Key"] for item in listed}
    assert {f"outputs/{batch_id}/{row['id']}.jpg" for row in rows} <= keys
    for row in rows[::40]:
        tags = stack_rt.storage.fetch(S3Uri(bucket, f"outputs/{batch_id}/{row['id']}.jpg")).tags
        assert tags == {
            "fillpipe-batch": batch_id,
            "fillpipe-job": row["id"],
            "fillpipe-finetune": finetune_id,
            "wave": row["tags"]["wave"],
        }
    report = stack_rt.storage.read(
        S3Uri(bucket, f"outputs/{batch_id}/results.jsonl"), max_bytes=1 << 20
    )
    lines = [json.loads(line) for line in report.decode().splitlines()]
    assert [(line["id"], line["state"]) for line in lines] == [
        (row["id"], "stored") for row in rows
    ]
