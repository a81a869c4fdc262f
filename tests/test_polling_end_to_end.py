"""Callbacks off on a whole embedded stack: a batch is polled to the end, no webhook is
sent, and each slot turns over within about a poll interval of its task ending.

A stack of its own: callbacks off (the receiver runs, so a webhook URL, were one sent,
would be called and show in the emulator's `webhook_at`), 4 provider slots, and tasks
that take 1.5-2.5 s on the emulator, so the batch runs several rounds per slot.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.slots import percentile, slot_use
from fillpipe.samples import make_samples
from fillpipe.stack import EmbeddedStack
from pipeline.polling import POLL_EVERY_S
from pipeline.runtime import Runtime
from pipeline.settings import Settings
from pipeline.states import JobState
from tests.conftest import hermetic_environ
from tests.stacks import (
    emulator_admin,
    running_stack,
    train_finetune,
    upload_batch,
    wait_until_done,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

SLOTS = 4
JOBS = 16
TASK_S = 2.0
# Task times spread over a poll interval, so the polls do not happen to fall just after
# every task ends.
TASK_JITTER_S = 0.5
# Slot gaps are a poll interval at most, plus the collect and the next POST: generous
# for a loaded 2-core machine.
GAP_MARGIN_S = 0.5


@pytest.fixture(scope="module")
def polling_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EmbeddedStack]:
    environ = {
        **hermetic_environ(),
        "FILLPIPE_CALLBACKS": "off",
        "FILLPIPE_PROVIDER_SLOTS": str(SLOTS),
    }
    emulator_env = {
        "FILLPIPE_EMULATOR_LATENCY_BASE_S": str(TASK_S),
        "FILLPIPE_EMULATOR_LATENCY_PER_MP_S": "0",
        "FILLPIPE_EMULATOR_LATENCY_JITTER_S": str(TASK_JITTER_S),
        "FILLPIPE_EMULATOR_MAX_ACTIVE_TASKS": str(SLOTS),
    }
    root = tmp_path_factory.mktemp("polling-stack")
    with running_stack(request, root, environ, emulator_env) as embedded:
        yield embedded


@pytest.fixture(scope="module")
def polling_rt(polling_stack: EmbeddedStack) -> Iterator[Runtime]:
    runtime = Runtime.from_settings(Settings.from_environ(polling_stack.env))
    yield runtime
    runtime.close()


def test_a_batch_is_polled_to_the_end_without_webhooks(polling_stack, polling_rt):
    assert not polling_rt.settings.callbacks
    assert polling_rt.settings.public_url  # the receiver is up; callbacks are off anyway
    finetune_id = train_finetune(polling_rt)
    samples = make_samples(JOBS, size_px=128)
    batch_id, _ = upload_batch(polling_rt, finetune_id, samples, tags={"suite": "polling"})

    summary = wait_until_done(polling_rt.ledger, batch_id, timeout_s=150)

    assert summary.counts == {JobState.STORED: JOBS}
    task_ids = {record.provider_task_id for record in polling_rt.ledger.jobs.of_batch(batch_id)}
    with emulator_admin(polling_stack) as admin:
        listed = admin.get("/admin/tasks").raise_for_status().json()["tasks"]
    tasks = [task for task in listed if task["id"] in task_ids]
    assert len(tasks) == JOBS
    assert [task["webhook_at"] for task in tasks] == [None] * JOBS  # no webhook was sent
    gaps_s = slot_use(tasks, SLOTS).gaps_s
    assert len(gaps_s) == JOBS - SLOTS
    assert percentile(gaps_s, 50) <= POLL_EVERY_S + GAP_MARGIN_S, sorted(gaps_s)
    for service in ("worker", "receiver"):
        assert "callbacks off: polling each active task" in polling_stack.log_tail(service, 400)
