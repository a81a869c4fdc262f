"""One batch through the whole pipeline on the embedded stack: real Valkey, real S3
server, the emulator over HTTP, the receiver under uvicorn, a Celery worker process."""

import csv
import io
import json

import httpx
import numpy as np
import pytest
from PIL import Image

from fillpipe.samples import make_samples
from pipeline.batches import batch_prefix
from pipeline.models import JobRef
from pipeline.states import JobState
from pipeline.storage import S3Uri
from tests.commands import run_fillpipe
from tests.stacks import upload_batch, wait_until_done

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

JOBS = 3
DEADLINE_S = 120.0


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)


@pytest.fixture(scope="module")
def finished_batch(stack_rt, finetune_id):
    """A batch submitted through the broker and waited for until every job ended."""
    samples = make_samples(JOBS, size_px=256)
    batch_id, specs = upload_batch(stack_rt, finetune_id, samples, tags={"suite": "e2e"})
    return (
        batch_id,
        samples,
        specs,
        wait_until_done(stack_rt.ledger, batch_id, timeout_s=DEADLINE_S),
    )


def test_batch_is_edited_inside_the_mask_only_and_tagged(stack_rt, finetune_id, finished_batch):
    batch_id, samples, specs, summary = finished_batch

    assert summary.counts == {JobState.STORED: JOBS}
    for sample, spec in zip(samples, specs, strict=True):
        stored = stack_rt.storage.fetch(S3Uri.parse(spec.output_uri))
        assert stored.tags == {
            "fillpipe-batch": batch_id,
            "fillpipe-job": sample.name,
            "fillpipe-finetune": finetune_id,
            "suite": "e2e",
        }
        before, after = pixels(sample.image_png), pixels(stored.body)
        masked = np.asarray(Image.open(io.BytesIO(sample.mask_png)).convert("L")) >= 128
        assert after.shape == before.shape
        assert np.array_equal(after[~masked], before[~masked]), "pixels outside the mask changed"
        assert np.abs(after[masked] - before[masked]).mean() > 5, "the masked region is unedited"
    results = stack_rt.storage.read(
        S3Uri.parse(batch_prefix(stack_rt, batch_id) + "results.jsonl"), max_bytes=1 << 20
    )
    rows = [json.loads(line) for line in results.decode().splitlines()]
    assert [(row["id"], row["state"]) for row in rows] == [(s.name, "stored") for s in samples]


def test_live_receiver_refuses_a_wrong_secret(stack, stack_rt):
    ref = JobRef("b-none", "job")
    token = stack_rt.signer.token(ref, 1)
    response = httpx.post(
        f"{stack_rt.settings.public_url}/v1/callbacks/bfl/{token}",
        content=b"{}",
        headers={"x-webhook-secret": "wrong"},
    )
    assert response.status_code == 401
    assert stack_rt.ledger.jobs.get(ref) is None


def test_status_from_another_shell_counts_the_batch(stack, clean_environ, finished_batch):
    batch_id = finished_batch[0]
    result = run_fillpipe("status", batch_id, "--json", env={**clean_environ, **stack.env})
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["done"] and summary["counts"]["stored"] == summary["total"] == JOBS
    assert summary["cost_credits"] > 0


def test_results_from_another_shell_as_csv(stack, clean_environ, finished_batch):
    batch_id, samples, specs, _ = finished_batch
    result = run_fillpipe(
        "results", batch_id, "--format", "csv", env={**clean_environ, **stack.env}
    )
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(row["id"], row["state"], row["output"]) for row in rows] == [
        (sample.name, "stored", spec.output_uri)
        for sample, spec in zip(samples, specs, strict=True)
    ]


def test_no_secret_reaches_any_log_or_output_metadata(stack, stack_rt, finished_batch):
    """Every service's log of the whole run, and the stored objects' metadata, hold no
    API key, signing key, S3 secret, webhook secret or redis password."""
    specs = finished_batch[2]
    env = stack.env
    secrets = {
        "provider key": env["FILLPIPE_PROVIDER_KEY"],
        "S3 secret": env["AWS_SECRET_ACCESS_KEY"],
        "emulator admin token": env["FILLPIPE_EMULATOR_ADMIN_TOKEN"],
        "redis password": stack_rt.ledger.redis.connection_pool.connection_kwargs["password"],
    }
    secrets.update(
        (f"signing key {n}", key.reveal()) for n, key in enumerate(stack_rt.settings.signing_keys)
    )
    for spec in specs:
        secrets[f"webhook secret {spec.ref}"] = stack_rt.signer.webhook_secret(spec.ref, 1)
    logs = {log.name: log.read_text(errors="replace") for log in stack.state.logs.glob("*.log")}
    assert {"worker.log", "receiver.log", "emulator.log"} <= set(logs)
    assert "callback for" in logs["receiver.log"]  # the logs did record the run
    for name, secret in secrets.items():
        assert secret and len(secret) >= 8, name
        for log_name, text in logs.items():
            assert secret not in text, f"{name} appears in {log_name}"
    for spec in specs:
        metadata = stack_rt.storage.fetch(S3Uri.parse(spec.output_uri)).metadata
        assert not any(secret in str(metadata) for secret in secrets.values())
        assert "sig=" not in str(metadata)
