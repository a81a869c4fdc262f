"""`fillpipe submit` from another shell against the embedded stack."""

import csv
import json

import pytest

from fillpipe.samples import make_samples
from pipeline.images import inputs_digest
from pipeline.states import JobState
from pipeline.storage import S3Uri
from tests.commands import run_fillpipe

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


@pytest.fixture
def photos(tmp_path):
    """Two sample photos with masks on disk, in a folder with a space in its name."""
    folder = tmp_path / "shoot 1"
    folder.mkdir()
    samples = make_samples(2, size_px=128)
    for sample in samples:
        (folder / f"{sample.name}.png").write_bytes(sample.image_png)
        (folder / f"{sample.name}+mask.png").write_bytes(sample.mask_png)
    return folder, samples


def batch_ids(stack_rt):
    return set(stack_rt.ledger.redis.zrange("fp:batches", 0, -1))


def test_jsonl_manifest_with_local_files_runs_to_stored(
    stack, stack_rt, clean_environ, finetune_id, photos, tmp_path
):
    _, samples = photos
    manifest = tmp_path / "edits.jsonl"
    rows = [
        {
            "id": f"édit {sample.name}",
            "image": f"shoot 1/{sample.name}.png",
            "mask": f"shoot 1/{sample.name}+mask.png",
            "prompt": f"{sample.prompt} ✨",
            "finetune_id": finetune_id,
            "output_format": "png",
            "seed": 3,
            "tags": {"campaign": "spring 26"},
        }
        for sample in samples
    ]
    manifest.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    env = {**clean_environ, **stack.env}

    result = run_fillpipe("submit", str(manifest), "--wait", env=env)

    assert result.returncode == 0, result.stderr
    batch_id = result.stdout.strip().splitlines()[-1]
    summary = stack_rt.ledger.batches.summary(batch_id)
    assert summary.counts == {JobState.STORED: 2}
    by_id = {row["id"]: sample for row, sample in zip(rows, samples, strict=True)}
    for record in stack_rt.ledger.jobs.of_batch(batch_id):
        assert record.spec.image_uri.startswith(f"s3://{stack_rt.settings.bucket}/inputs/sha256/")
        # Checked up front (a small batch), so its submit did not decode them again.
        sample = by_id[record.ref.job_id]
        assert record.spec.checked_inputs == inputs_digest(sample.image_png, sample.mask_png)
        stored = stack_rt.storage.fetch(S3Uri.parse(record.spec.output_uri))
        assert stored.tags["fillpipe-job"] == record.ref.job_id
        assert stored.tags["campaign"] == "spring 26"
    manifest_copy = stack_rt.storage.read(
        S3Uri.parse(f"s3://{stack_rt.settings.bucket}/outputs/{batch_id}/manifest.jsonl"),
        max_bytes=1 << 20,
    )
    assert len(manifest_copy.decode().splitlines()) == 2


def test_bad_manifest_lists_every_problem_and_changes_nothing(
    stack, stack_rt, clean_environ, finetune_id, photos, tmp_path
):
    manifest = tmp_path / "bad.csv"
    with manifest.open("w", newline="", encoding="utf-8-sig") as file:
        writer = csv.writer(file)
        writer.writerow(["id", "image", "mask", "prompt", "finetune_id", "steps", "tag.team"])
        writer.writerow(["a", "shoot 1/mug-01.png", "", 'ok, "quoted"', finetune_id, "30", "x"])
        writer.writerow(["b", "shoot 1/missing.png", "", "p", finetune_id, "80", "y"])
        writer.writerow(["a", "s3://other/x.png", "", "", finetune_id, "20", "z"])
    before = batch_ids(stack_rt)

    result = run_fillpipe("submit", str(manifest), env={**clean_environ, **stack.env})

    assert result.returncode == 2
    for expected in ("bad.csv:3: steps", "bad.csv:4: id", "bad.csv:4: prompt"):
        assert expected in result.stderr, result.stderr
    assert batch_ids(stack_rt) == before


def test_missing_local_files_are_reported_before_anything_is_uploaded(
    stack, stack_rt, clean_environ, finetune_id, tmp_path
):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(
        json.dumps(
            {
                "image": "nope.png",
                "mask": "nope-mask.png",
                "prompt": "p",
                "finetune_id": finetune_id,
            }
        )
        + "\n"
    )
    before = batch_ids(stack_rt)
    result = run_fillpipe("submit", str(manifest), env={**clean_environ, **stack.env})
    assert result.returncode == 2
    assert "m.jsonl:1: image: local file" in result.stderr
    assert "m.jsonl:1: mask: local file" in result.stderr
    assert batch_ids(stack_rt) == before


def test_dry_run_submits_nothing(stack, stack_rt, clean_environ, finetune_id, photos, tmp_path):
    folder, samples = photos
    manifest = tmp_path / "dry.jsonl"
    manifest.write_text(
        json.dumps(
            {
                "image": str(folder / f"{samples[0].name}.png"),
                "mask": str(folder / f"{samples[0].name}+mask.png"),
                "prompt": "p",
                "finetune_id": finetune_id,
            }
        )
        + "\n"
    )
    before = batch_ids(stack_rt)
    result = run_fillpipe("submit", str(manifest), "--dry-run", env={**clean_environ, **stack.env})
    assert result.returncode == 0, result.stderr
    assert "1 rows valid" in result.stdout
    assert batch_ids(stack_rt) == before


def photo_rows(folder, samples, finetune_id):
    """One minimal manifest row per sample photo on disk, by absolute path."""
    return [
        {
            "image": str(folder / f"{sample.name}.png"),
            "mask": str(folder / f"{sample.name}+mask.png"),
            "prompt": "p",
            "finetune_id": finetune_id,
        }
        for sample in samples
    ]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_inputs_are_checked_up_front_for_small_batches(
    stack, stack_rt, clean_environ, finetune_id, photos, tmp_path
):
    folder, samples = photos
    small_mask = tmp_path / "small-mask.png"
    small_mask.write_bytes(make_samples(1, size_px=64)[0].mask_png)
    manifest = write_jsonl(
        tmp_path / "sizes.jsonl",
        [
            {
                "image": str(folder / f"{samples[0].name}.png"),
                "mask": str(small_mask),
                "prompt": "p",
                "finetune_id": finetune_id,
            },
        ],
    )
    before = batch_ids(stack_rt)
    result = run_fillpipe("submit", str(manifest), env={**clean_environ, **stack.env})
    assert result.returncode == 2
    assert "sizes.jsonl:1: image: the mask is 64x64 but the image is 128x128" in result.stderr
    assert batch_ids(stack_rt) == before
    unchecked = run_fillpipe(
        "submit",
        str(manifest),
        "--no-check-inputs",
        "--dry-run",
        env={**clean_environ, **stack.env},
    )
    assert unchecked.returncode == 0, unchecked.stderr


def test_dry_run_estimates_the_cost(stack, clean_environ, finetune_id, photos, tmp_path):
    folder, samples = photos
    manifest = write_jsonl(
        tmp_path / "cost.jsonl",
        photo_rows(folder, samples, finetune_id),
    )
    result = run_fillpipe("submit", str(manifest), "--dry-run", env={**clean_environ, **stack.env})
    assert result.returncode == 0, result.stderr
    credits = 2 * 128 * 128 / 1_000_000 * 8
    assert f"estimated cost {credits:.2f} credits" in result.stderr


def test_budget_skips_what_would_exceed_it(
    stack, stack_rt, clean_environ, finetune_id, photos, tmp_path
):
    folder, samples = photos
    manifest = write_jsonl(
        tmp_path / "budget.jsonl",
        photo_rows(folder, samples, finetune_id),
    )
    result = run_fillpipe(
        "submit", str(manifest), "--budget-usd", "0", "--wait", env={**clean_environ, **stack.env}
    )
    assert result.returncode == 1
    batch_id = result.stdout.strip().splitlines()[-1]
    summary = stack_rt.ledger.batches.summary(batch_id)
    assert summary.counts == {JobState.SKIPPED_BUDGET: 2}
    assert summary.cost_credits == 0
    assert all("budget" in record.error for record in stack_rt.ledger.jobs.of_batch(batch_id))


def test_manifest_in_s3_with_inputs_in_s3(stack, stack_rt, clean_environ, finetune_id, photos):
    _, samples = photos
    bucket = stack_rt.settings.bucket
    rows = []
    for sample in samples:
        key = f"uploads/my shoot/{sample.name}+v2.png"
        stack_rt.storage.write(S3Uri(bucket, key), sample.image_png, content_type="image/png")
        stack_rt.storage.write(
            S3Uri(bucket, key + ".mask"), sample.mask_png, content_type="image/png"
        )
        rows.append(
            {
                "image": f"s3://{bucket}/{key}",
                "mask": f"s3://{bucket}/{key}.mask",
                "prompt": "p",
                "finetune_id": finetune_id,
                "output": "{stem}.{ext}",
            }
        )
    manifest = S3Uri(bucket, "manifests/edits.jsonl")
    stack_rt.storage.write(
        manifest,
        "".join(json.dumps(r) + "\n" for r in rows).encode(),
        content_type="application/x-ndjson",
    )

    # Not checked up front, as for large batches: each submit decodes its inputs.
    result = run_fillpipe(
        "submit", str(manifest), "--no-check-inputs", "--wait", env={**clean_environ, **stack.env}
    )

    assert result.returncode == 0, result.stderr
    batch_id = result.stdout.strip().splitlines()[-1]
    records = list(stack_rt.ledger.jobs.of_batch(batch_id))
    outputs = [record.spec.output_uri for record in records]
    assert outputs == [f"s3://{bucket}/outputs/{batch_id}/{s.name}+v2.jpg" for s in samples]
    assert [record.spec.checked_inputs for record in records] == [None, None]
    assert stack_rt.ledger.batches.summary(batch_id).counts == {JobState.STORED: 2}


def test_a_paused_account_holds_the_batch_until_resumed(
    stack, stack_rt, clean_environ, finetune_id, photos, tmp_path
):
    folder, samples = photos
    manifest = write_jsonl(tmp_path / "paused.jsonl", photo_rows(folder, samples, finetune_id))
    env = {**clean_environ, **stack.env}
    stack_rt.ledger.account().pause("provider account has no credits left (402)")  # as a 402 does
    try:
        submitted = run_fillpipe("submit", str(manifest), env=env)
        assert submitted.returncode == 0, submitted.stderr
        batch_id = submitted.stdout.strip().splitlines()[-1]
        status = json.loads(run_fillpipe("status", batch_id, "--json", env=env).stdout)
        assert status["accounts"]["default"]["paused"] == (
            "provider account has no credits left (402)"
        )
        assert status["counts"]["queued"] == 2
    finally:
        resumed = run_fillpipe("resume", env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert (
        "account default: resumed (was paused: provider account has no credits left (402))"
        in resumed.stdout
    )
    watched = run_fillpipe("status", batch_id, "--watch", "--json", env=env)
    assert watched.returncode == 0, watched.stderr
    final = json.loads(watched.stdout)
    assert final["counts"]["stored"] == 2 and final["accounts"]["default"]["paused"] is None
