"""Two provider accounts end to end: a BFL one of 3 slots and a CometAPI one of 5, on the
emulator (which would allow 10 each), under a real worker, receiver and beat.

Jobs go to the account that owns their finetune; each account's limit holds at every
instant while both are saturated (the emulator's high-water mark of active tasks per
key); a 402 on one account pauses it alone, and `fillpipe resume ACCOUNT` lets it go on.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fillpipe.batches import resume_account
from fillpipe.samples import make_samples
from fillpipe.stack import EmbeddedStack
from pipeline import intake
from pipeline.runtime import Runtime
from pipeline.settings import Settings
from pipeline.states import JobState
from tests.conftest import hermetic_environ, print_log_tails
from tests.stacks import emulator_admin, train_finetune, wait_until_done

pytestmark = pytest.mark.timeout(600)

SLOTS = {"brand-a": 3, "brand-b": 5}
KEYS = {"brand-a": "key-of-brand-a-0123456789", "brand-b": "key-of-brand-b-0123456789"}
ACCOUNTS_TOML = """
[accounts.brand-a]
flavor = "bfl"
key_env = "TEST_KEY_BRAND_A"
slots = 3

[accounts.brand-b]
flavor = "cometapi"
key_env = "TEST_KEY_BRAND_B"
slots = 5
default = true
"""
# The emulator would allow 10 active tasks per key: fillpipe's pools keep to 3 and 5.
EMULATOR = {
    "FILLPIPE_EMULATOR_ACCOUNTS": json.dumps({key: {"slots": 10} for key in KEYS.values()}),
    "FILLPIPE_EMULATOR_LATENCY_BASE_S": "0.5",
    "FILLPIPE_EMULATOR_LATENCY_PER_MP_S": "0",
    "FILLPIPE_EMULATOR_LATENCY_JITTER_S": "0",
}
SIZE_PX = 128
DONE_TIMEOUT_S = 240.0


@pytest.fixture(scope="module")
def accounts_stack(request, tmp_path_factory) -> Iterator[EmbeddedStack]:
    root = tmp_path_factory.mktemp("accounts")
    accounts_file = root / "accounts.toml"
    accounts_file.write_text(ACCOUNTS_TOML)
    environ = {
        **hermetic_environ(),
        "FILLPIPE_ACCOUNTS_FILE": str(accounts_file),
        "TEST_KEY_BRAND_A": KEYS["brand-a"],
        "TEST_KEY_BRAND_B": KEYS["brand-b"],
    }
    stack = EmbeddedStack(root / "state", environ, emulator_env=EMULATOR)
    stack.start(timeout_s=120)
    try:
        yield stack
    finally:
        if request.session.testsfailed:
            print_log_tails(stack)
        stack.stop()


@pytest.fixture(scope="module")
def env(accounts_stack) -> dict[str, str]:
    """The stack's settings and the accounts' keys, as a shell that sourced stack.env has."""
    return {
        **accounts_stack.env,
        "TEST_KEY_BRAND_A": KEYS["brand-a"],
        "TEST_KEY_BRAND_B": KEYS["brand-b"],
    }


@pytest.fixture(scope="module")
def rt(env) -> Iterator[Runtime]:
    runtime = Runtime.from_settings(Settings.from_environ(env))
    yield runtime
    runtime.close()


@pytest.fixture(scope="module")
def finetunes(rt) -> dict[str, str]:
    """A finetune trained on each account (each account sees only its own)."""
    return {name: train_finetune(rt, name) for name in SLOTS}


def write_manifest(folder: Path, jobs: dict[str, int], finetunes: dict[str, str]) -> Path:
    """A manifest of `jobs[account]` rows using that account's finetune, interleaved,
    none naming its account."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    total = sum(jobs.values())
    samples = make_samples(total, size_px=SIZE_PX)
    owners = [name for turn in range(total) for name in jobs if turn < jobs[name]]
    for index, (sample, owner) in enumerate(zip(samples, owners, strict=True)):
        (folder / f"{index}.png").write_bytes(sample.image_png)
        (folder / f"{index}-mask.png").write_bytes(sample.mask_png)
        rows.append(
            {
                "id": f"{owner}-{index}",
                "image": f"{index}.png",
                "mask": f"{index}-mask.png",
                "prompt": sample.prompt,
                "finetune_id": finetunes[owner],
                "seed": index,
            }
        )
    manifest = folder / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return manifest


def high_water(stack: EmbeddedStack) -> dict[str, int]:
    with emulator_admin(stack) as admin:
        stats = admin.get("/admin/stats").json()["accounts"]
    return {
        name: stats.get(key, {}).get("active_tasks_high_water", 0) for name, key in KEYS.items()
    }


def test_jobs_go_to_their_finetunes_accounts_each_within_its_own_limit(
    accounts_stack, rt, finetunes, tmp_path
):
    manifest = write_manifest(tmp_path, {"brand-a": 18, "brand-b": 30}, finetunes)

    batch = intake.submit(rt, str(manifest)).batch_id
    summary = wait_until_done(rt.ledger, batch, timeout_s=DONE_TIMEOUT_S)

    assert summary.counts == {JobState.STORED: 48}
    accounts = {record.ref.job_id: record.account for record in rt.ledger.jobs.of_batch(batch)}
    assert all(job_id.startswith(account) for job_id, account in accounts.items())
    # Saturated, and never above: the high-water mark of active tasks is the limit.
    assert high_water(accounts_stack) == SLOTS


def test_a_402_pauses_its_account_alone_until_resumed(accounts_stack, env, rt, finetunes, tmp_path):
    with emulator_admin(accounts_stack) as admin:
        admin.put("/admin/accounts/credits", json={"key": KEYS["brand-a"], "credits": 0})
    manifest = write_manifest(tmp_path, {"brand-a": 4, "brand-b": 8}, finetunes)

    batch = intake.submit(rt, str(manifest)).batch_id
    deadline = time.monotonic() + DONE_TIMEOUT_S
    while rt.ledger.batches.summary(batch).counts.get(JobState.STORED, 0) < 8:
        assert time.monotonic() < deadline, rt.ledger.batches.summary(batch)
        time.sleep(0.2)

    states = {record.ref.job_id: record.state for record in rt.ledger.jobs.of_batch(batch)}
    assert {state for job, state in states.items() if job.startswith("brand-b")} == {
        JobState.STORED
    }
    assert JobState.STORED not in {s for job, s in states.items() if job.startswith("brand-a")}
    paused = rt.ledger.account("brand-a").state().paused_reason
    assert paused is not None and "credits" in paused
    assert rt.ledger.account("brand-b").state().paused_reason is None

    with emulator_admin(accounts_stack) as admin:
        admin.put("/admin/accounts/credits", json={"key": KEYS["brand-a"], "credits": 1000})
    resume_account(env, "brand-a")

    summary = wait_until_done(rt.ledger, batch, timeout_s=DONE_TIMEOUT_S)
    assert summary.counts == {JobState.STORED: 12}
