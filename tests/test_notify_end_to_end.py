"""`fillpipe submit --notify` on a whole embedded stack: the worker's relay publishes the
batch's notification, its first attempt is answered 503, and beat's reconcile sweep
sends it again with the same webhook id; both verify with the `standardwebhooks` package.

A stack of its own: it needs FILLPIPE_NOTIFY_SECRET in every service, and a sweep every
2 s so the retry (due 5 s after the first attempt) comes quickly.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from fillpipe.samples import make_samples
from fillpipe.stack import EmbeddedStack
from pipeline.runtime import Runtime
from pipeline.settings import Settings
from tests.commands import run_fillpipe
from tests.conftest import STACK_EMULATOR_ENV
from tests.notify_receiver import SECRET, NotifyReceiver
from tests.stacks import hermetic_environ, running_stack, train_finetune

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

JOBS = 2


@pytest.fixture(scope="module")
def notify_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EmbeddedStack]:
    environ = {
        **hermetic_environ(),
        "FILLPIPE_NOTIFY_SECRET": SECRET,
        "FILLPIPE_RECONCILE_EVERY_S": "2",
    }
    root = tmp_path_factory.mktemp("notify-stack")
    with running_stack(request, root, environ, STACK_EMULATOR_ENV) as embedded:
        yield embedded


@pytest.fixture(scope="module")
def notify_rt(notify_stack: EmbeddedStack) -> Iterator[Runtime]:
    runtime = Runtime.from_settings(Settings.from_environ(notify_stack.env))
    yield runtime
    runtime.close()


def write_manifest(tmp_path, finetune_id):
    rows = []
    for index, sample in enumerate(make_samples(JOBS, size_px=64)):
        (tmp_path / f"p{index}.png").write_bytes(sample.image_png)
        (tmp_path / f"p{index}-mask.png").write_bytes(sample.mask_png)
        row = {"id": f"mug-{index}", "image": f"p{index}.png", "mask": f"p{index}-mask.png"}
        rows.append({**row, "prompt": sample.prompt, "finetune_id": finetune_id})
    path = tmp_path / "mugs.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_submit_notify_sends_one_batch_finished_again_after_a_503(
    notify_stack, notify_rt, tmp_path
):
    manifest = write_manifest(tmp_path, train_finetune(notify_rt))
    env = {**hermetic_environ(), **notify_stack.env}

    with NotifyReceiver(statuses=[503]).running() as receiver:
        result = run_fillpipe("submit", str(manifest), "--notify", receiver.url, "--wait", env=env)
        assert result.returncode == 0, result.stderr
        batch_id = result.stdout.strip()
        first, second = receiver.wait_for(2, timeout_s=60)
        time.sleep(5)  # two more sweeps: nothing more is sent
        assert len(receiver.received) == 2

    assert first.webhook_id == second.webhook_id == f"msg_{batch_id}"
    assert first.body == second.body
    event = second.verified()
    assert first.verified() == event
    assert event["type"] == "batch.finished"
    assert event["data"]["counts"]["stored"] == JOBS
    assert event["data"]["total"] == JOBS
    results = event["data"]["results"]
    assert results == f"s3://{notify_rt.settings.bucket}/outputs/{batch_id}/results.jsonl"
    assert notify_rt.ledger.notifications.pending() == {}
    worker_log = notify_stack.log_tail("worker", 400)
    assert f"notification msg_{batch_id}" in worker_log
    assert SECRET.removeprefix("whsec_") not in worker_log
