"""What the commands print, read back as a script reads it: ids and URIs whole at any
width, data on stdout, one JSON document with `--json`."""

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from fillpipe.samples import make_samples
from pipeline.states import JobState
from pipeline.storage import S3Uri
from tests.commands import run_fillpipe

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

NARROW_COLUMNS = 60
S3_URI = re.compile(r"s3://[^\s\"]+")
BATCH_ID = re.compile(r"\bb\d{8}-[0-9a-f]*")


@pytest.fixture
def env(stack, clean_environ):
    """The session stack's settings, and a terminal width narrower than any URI line."""
    return {**clean_environ, **stack.env, "COLUMNS": str(NARROW_COLUMNS)}


@pytest.fixture
def manifest(tmp_path, finetune_id):
    """A one-row manifest with a local photo and mask."""
    (sample,) = make_samples(1, size_px=64)
    (tmp_path / "photo.png").write_bytes(sample.image_png)
    (tmp_path / "photo-mask.png").write_bytes(sample.mask_png)
    row = {
        "id": "mug-01",
        "image": "photo.png",
        "mask": "photo-mask.png",
        "prompt": sample.prompt,
        "finetune_id": finetune_id,
    }
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps(row) + "\n")
    return path


def assert_tagged_output(stack_rt, uri, *, batch_id, job_id, finetune_id):
    stored = stack_rt.storage.fetch(S3Uri.parse(uri))
    assert stored.tags["fillpipe-batch"] == batch_id
    assert stored.tags["fillpipe-job"] == job_id
    assert stored.tags["fillpipe-finetune"] == finetune_id


def assert_ids_whole(text, known_uris=(), batch_ids=()):
    """Every s3:// URI and batch id in `text` is one of the known ones, whole: a URI or
    id broken across lines would show up as a shorter token here."""
    for uri in S3_URI.findall(text):
        assert uri in known_uris, f"{uri!r} is not a whole URI in:\n{text}"
    for batch_id in BATCH_ID.findall(text):
        assert batch_id in batch_ids, f"{batch_id!r} is not a whole batch id in:\n{text}"


def test_demo_prints_every_output_uri_whole_and_each_is_stored_and_tagged(env, stack_rt, tmp_path):
    result = run_fillpipe("demo", "--jobs", "2", "--out", str(tmp_path), env=env)

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    batch_id = re.match(r"batch (\S+): 2/2 stored", lines[0]).group(1)
    finetune_id = re.fullmatch(r"finetune (\S+)", lines[1]).group(1)
    jobs = {line.split()[0]: S3_URI.search(line).group() for line in lines[3:5]}
    assert set(jobs) == {"mug-01", "sneaker-02"}
    for job_id, uri in jobs.items():
        assert uri == f"s3://{stack_rt.settings.bucket}/outputs/{batch_id}/{job_id}.png"
        assert_tagged_output(
            stack_rt, uri, batch_id=batch_id, job_id=job_id, finetune_id=finetune_id
        )
    results_uri = f"s3://{stack_rt.settings.bucket}/outputs/{batch_id}/results.jsonl"
    sheet = tmp_path.resolve() / f"contact-sheet-{batch_id}.png"
    assert lines[5:] == [f"results manifest {results_uri}", f"contact sheet {sheet}"]
    assert sheet.is_file()
    assert_ids_whole(
        result.stdout + result.stderr,
        known_uris={*jobs.values(), results_uri},
        batch_ids={batch_id},
    )
    assert stack_rt.ledger.batches.summary(batch_id).source == "demo"


def test_demo_json_is_one_document_naming_every_output(env, stack_rt, tmp_path):
    result = run_fillpipe("demo", "--jobs", "2", "--json", "--out", str(tmp_path), env=env)

    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    batch_id = document["batch"]
    assert [job["id"] for job in document["jobs"]] == ["mug-01", "sneaker-02"]
    for job in document["jobs"]:
        assert job["state"] == "stored" and job["error"] is None and job["cost_credits"] > 0
        assert_tagged_output(
            stack_rt,
            job["output"],
            batch_id=batch_id,
            job_id=job["id"],
            finetune_id=document["finetune"],
        )
    assert (
        document["results"] == f"s3://{stack_rt.settings.bucket}/outputs/{batch_id}/results.jsonl"
    )
    assert Path(document["contact_sheet"]).is_file()
    assert (document["stored"], document["failed"]) == (2, 0)
    assert document["cost_credits"] == sum(job["cost_credits"] for job in document["jobs"])


def test_submit_json_dry_run_names_no_batch_and_records_nothing(env, stack_rt, manifest):
    before = stack_rt.ledger.batches.recent(1)

    result = run_fillpipe("submit", str(manifest), "--dry-run", "--json", env=env)

    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    credits = 64 * 64 / 1_000_000 * 8
    # Each account's share of the estimate against its balance at the provider.
    account = document.pop("accounts")["default"]
    assert account["estimated_credits"] == round(credits, 4)
    assert account["balance_credits"] > credits and account["enough"] is True
    assert document == {
        "batch": None,
        "source": str(manifest.resolve()),
        "rows": 1,
        "inputs_checked": True,
        "estimated_credits": round(credits, 4),
        "estimated_usd": round(credits / 100, 4),
        "dry_run": True,
        "budget_usd": None,
        "priority": 1,
        "final": None,
    }
    assert stack_rt.ledger.batches.recent(1) == before


def test_submit_json_with_wait_reports_the_batch_and_its_final_counts(env, stack_rt, manifest):
    result = run_fillpipe("submit", str(manifest), "--json", "--wait", "--budget-usd", "5", env=env)

    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    batch_id = document["batch"]
    assert (document["rows"], document["inputs_checked"], document["dry_run"]) == (1, True, False)
    assert document["budget_usd"] == 5
    final = document["final"]
    assert final["batch"] == batch_id and final["done"] is True
    assert final["counts"]["stored"] == 1 and final["source"] == str(manifest.resolve())
    assert final["budget_usd"] == 5
    assert stack_rt.ledger.batches.summary(batch_id).counts == {JobState.STORED: 1}
    assert f"batch {batch_id}: 1 jobs queued" in result.stderr


def test_status_json_keeps_its_shape_and_adds_source_and_creation(env, stack_rt, manifest):
    batch_id = run_fillpipe("submit", str(manifest), env=env).stdout.strip()

    result = run_fillpipe("status", batch_id, "--watch", "--json", env=env)

    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    for key in ("batch", "total", "finished", "done", "counts", "cost_credits", "cost_usd"):
        assert key in document
    assert {"priority", "cancelled", "accounts"} <= set(document)
    assert set(document["accounts"]["default"]) == {
        "slots",
        "slots_in_use",
        "paused",
        "cooldown_s",
        "spent_today_credits",
    }
    assert document["source"] == str(manifest.resolve())
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", document["created"])
    assert document["counts"] == {state.value: int(state is JobState.STORED) for state in JobState}


def test_batches_lists_the_newest_first_with_source_counts_and_cost(
    env, stack_rt, manifest, tmp_path
):
    first = run_fillpipe("submit", str(manifest), "--wait", env=env).stdout.strip()
    second = run_fillpipe("submit", str(manifest), "--no-check-inputs", env=env).stdout.strip()

    listed = run_fillpipe("batches", "--limit", "5", "--json", env=env)
    table = run_fillpipe("batches", "--limit", "5", env=env)

    assert listed.returncode == 0 and table.returncode == 0, listed.stderr + table.stderr
    batches = json.loads(listed.stdout)["batches"]
    ids = [batch["batch"] for batch in batches]
    assert len(ids) <= 5 and ids.index(second) < ids.index(first)
    assert [b["created"] for b in batches] == sorted((b["created"] for b in batches), reverse=True)
    done = batches[ids.index(first)]
    assert done["source"] == str(manifest.resolve())
    assert done["counts"]["stored"] == 1 and done["cost_credits"] > 0
    assert done["cost_usd"] == round(done["cost_credits"] / 100, 4)
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["batch", "created", "jobs", "states", "credits", "usd", "source"]
    row = next(line for line in lines if line.startswith(first))
    assert row.endswith(f"  {manifest.resolve()}")
    assert "stored=1" in row.split() and f"{done['cost_credits']:.2f}" in row.split()
    assert [line.split()[0] for line in lines[1:]] == ids


def test_no_id_or_uri_is_split_on_a_narrow_terminal(stack, clean_environ, stack_rt, manifest):
    """The commands on a pseudo-terminal 16 columns wide, narrower than a batch id."""
    env = {**clean_environ, **stack.env, "TERM": "xterm"}
    submitted = run_fillpipe("submit", str(manifest), "--wait", env=env).stdout.strip()
    (record,) = stack_rt.ledger.jobs.of_batch(submitted)
    known_uris = {
        record.spec.image_uri,
        f"s3://{stack_rt.settings.bucket}/outputs/{submitted}/mug-01.jpg",
        f"s3://{stack_rt.settings.bucket}/outputs/{submitted}/results.jsonl",
    }
    recent = {summary.batch_id for summary in stack_rt.ledger.batches.recent(5)}
    for args in (
        ("status", submitted),
        ("status", submitted, "--json"),
        ("batches", "--limit", "5"),
        ("results", submitted),
        ("submit", str(manifest), "--dry-run"),
    ):
        output = run_on_terminal(args, env=env, columns=16)
        assert_ids_whole(output, known_uris=known_uris, batch_ids=recent)
        assert submitted in output or args[0] == "submit", output
    assert str(manifest.resolve()) in run_on_terminal(
        ("batches", "--limit", "5"), env=env, columns=30
    )


def run_on_terminal(args, *, env, columns):
    """`fillpipe ARGS` with stdout and stderr on a pseudo-terminal `columns` wide; what it
    wrote, line breaks normalised to \\n."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "fillpipe", *args],
            stdin=subprocess.DEVNULL,
            stdout=follower,
            stderr=follower,
            env={**env, "COLUMNS": str(columns)},
        )
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert process.wait(timeout=60) == 0, b"".join(chunks).decode()
    finally:
        os.close(leader)
    return b"".join(chunks).decode().replace("\r\n", "\n")
