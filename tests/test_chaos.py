"""Chaos: 300 jobs through the whole embedded stack while things go wrong.

The emulator drops 30% of webhooks, duplicates and reorders 30%, answers 5% of submits
with a 500 (half of those after creating the task); mid-run one worker is SIGKILLed and
restarted, and later Redis is restarted (AOF). Every job must end stored exactly once
with the right tags, the ledger must add up, the provider's active-task high-water mark
must stay within the slot count, no lease may be left, and a job may be paid twice only
if it needed a second attempt because its first one could not be traced.
"""

from __future__ import annotations

import collections
import json
import time

import pytest

from fillpipe.samples import make_samples
from fillpipe.stack import EmbeddedStack
from pipeline.batches import batch_prefix
from pipeline.ledger import BatchSummary, Ledger
from pipeline.runtime import Runtime
from pipeline.settings import Settings
from pipeline.states import JobState
from pipeline.storage import S3Uri
from tests.conftest import hermetic_environ
from tests.stacks import emulator_admin, running_stack, train_finetune, upload_batch

pytestmark = [pytest.mark.integration, pytest.mark.chaos, pytest.mark.timeout(600)]

JOBS = 300
SLOTS = 8
TAGS = {"suite": "chaos", "campaign": "spring"}
FAULTS = {
    "webhook_drop": 0.3,
    "webhook_duplicate": 0.3,
    "webhook_reorder": 0.3,
    "submit_500": 0.025,
    "submit_500_after_create": 0.025,
    "seed": 20261124,
}
# Short deadlines so the reconcile sweep acts within seconds, as it would in minutes.
DEADLINES = {
    "FILLPIPE_CALLBACK_LATE_S": "2",
    "FILLPIPE_DISPATCH_LATE_S": "6",
    "FILLPIPE_SUBMIT_LATE_S": "6",
    "FILLPIPE_AMBIGUOUS_SUBMIT_S": "12",
    "FILLPIPE_COLLECT_LATE_S": "10",
    "FILLPIPE_RECONCILE_EVERY_S": "1",
}
EMULATOR = {
    "FILLPIPE_EMULATOR_MAX_ACTIVE_TASKS": str(SLOTS),
    "FILLPIPE_EMULATOR_LATENCY_BASE_S": "0.3",
    "FILLPIPE_EMULATOR_LATENCY_PER_MP_S": "0",
    "FILLPIPE_EMULATOR_LATENCY_JITTER_S": "0.1",
    "FILLPIPE_EMULATOR_WEBHOOK_RETRIES": "1",
}
DONE_TIMEOUT_S = 300.0
MAX_WORKER_RESTARTS = 2


@pytest.fixture(scope="module")
def chaos_stack(request, tmp_path_factory):
    environ = {**hermetic_environ(), "FILLPIPE_PROVIDER_SLOTS": str(SLOTS), **DEADLINES}
    with running_stack(request, tmp_path_factory.mktemp("chaos"), environ, EMULATOR) as stack:
        yield stack


def wait_for(ledger, batch_id, *, finished: int) -> None:
    deadline = time.monotonic() + DONE_TIMEOUT_S
    while ledger.batches.summary(batch_id).finished < finished:
        assert time.monotonic() < deadline, ledger.batches.summary(batch_id)
        time.sleep(0.1)


def wait_supervised(
    stack: EmbeddedStack, ledger: Ledger, batch_id: str
) -> tuple[BatchSummary, int]:
    """Wait for the batch, starting the worker again if it ended, as a deployment's
    supervisor does (compose: `restart: unless-stopped`). kombu's Redis transport ends
    the worker when the broker drops while it holds unacknowledged messages (it cannot
    rebuild its connection to restore them); the reconcile sweep then recovers their
    jobs. Returns the summary and how many times the worker was started again."""
    deadline = time.monotonic() + DONE_TIMEOUT_S
    restarts = 0
    while not (summary := ledger.batches.summary(batch_id)).done:
        assert time.monotonic() < deadline, f"batch not done: {summary}"
        if "worker" in stack.exited():
            assert restarts < MAX_WORKER_RESTARTS, stack.log_tail("worker")
            stack.restart("worker")
            restarts += 1
        time.sleep(0.2)
    return summary, restarts


def test_every_job_is_stored_exactly_once_through_faults_and_crashes(chaos_stack):
    stack: EmbeddedStack = chaos_stack
    rt = Runtime.from_settings(Settings.from_environ(stack.env))
    admin = emulator_admin(stack)
    finetune_id = train_finetune(rt)
    admin.put("/admin/faults", json=FAULTS).raise_for_status()
    batch_id, specs = upload_batch(rt, finetune_id, make_samples(JOBS, size_px=64), tags=TAGS)

    wait_for(rt.ledger, batch_id, finished=JOBS // 4)
    stack.kill("worker")  # SIGKILL, mid-run, with tasks in hand
    stack.restart("worker")
    wait_for(rt.ledger, batch_id, finished=JOBS // 2)
    stack.restart("valkey")  # same port, same AOF
    summary, worker_restarts = wait_supervised(stack, rt.ledger, batch_id)

    # One terminal state per job, and the counters agree with the records.
    assert summary.counts == {JobState.STORED: JOBS}
    records = {record.ref: record for record in rt.ledger.jobs.of_batch(batch_id)}
    assert {record.state for record in records.values()} == {JobState.STORED}
    assert len(records) == JOBS
    # Exactly one object per job, each tagged in the same PUT, nothing else written.
    prefix = S3Uri.parse(batch_prefix(rt, batch_id))
    listed = rt.storage.client.list_objects_v2(Bucket=prefix.bucket, Prefix=prefix.key)
    keys = sorted(item["Key"].removeprefix(prefix.key) for item in listed["Contents"])
    expected = sorted(f"{spec.ref.job_id}.png" for spec in specs)
    assert keys == sorted([*expected, "manifest.jsonl", "results.jsonl"])
    for spec in specs:
        stored = rt.storage.fetch(S3Uri.parse(spec.output_uri))
        assert stored.tags == {
            "fillpipe-batch": batch_id,
            "fillpipe-job": spec.ref.job_id,
            "fillpipe-finetune": finetune_id,
            **TAGS,
        }
    results_uri = S3Uri.parse(batch_prefix(rt, batch_id) + "results.jsonl")
    results = rt.storage.read(results_uri, max_bytes=1 << 20)
    rows = [json.loads(line) for line in results.decode().splitlines()]
    assert [row["state"] for row in rows] == ["stored"] * JOBS
    # The slots: never more active tasks than allowed, none left leased.
    (account,) = admin.get("/admin/stats").json()["accounts"].values()
    assert account["active_tasks_high_water"] <= SLOTS
    assert rt.ledger.slots.leases() == {}
    # Paid once per job, unless a first attempt left no trace and a second was made.
    ready_per_seed = collections.Counter(
        task["seed"]
        for task in admin.get("/admin/tasks").json()["tasks"]
        if task["status"] == "Ready" and task["seed"] is not None
    )
    for spec in specs:
        paid = ready_per_seed[spec.params.seed]
        attempts = records[spec.ref].attempt
        assert 1 <= paid <= attempts, (spec.ref, paid, attempts)
    retried = sum(record.attempt > 1 for record in records.values())
    print(
        f"chaos: {JOBS} stored; {retried} jobs needed more than one attempt; "
        f"{sum(ready_per_seed.values())} tasks paid; high-water "
        f"{account['active_tasks_high_water']}/{SLOTS}; worker started again "
        f"{worker_restarts} time(s) after the Redis restart"
    )
    rt.close()
