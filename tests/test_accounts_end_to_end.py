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
from tests.commands import run_fillpipe
from tests.conftest import hermetic_environ
from tests.stacks import emulator_admin, running_stack, train_finetune, wait_until_done

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
    with running_stack(request, root / "state", environ, EMULATOR) as stack:
        yield stack


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


def set_credits(stack: EmbeddedStack, account: str, credits: float) -> None:
    with emulator_admin(stack) as admin:
        admin.put(
            "/admin/accounts/credits", json={"key": KEYS[account], "credits": credits}
        ).raise_for_status()


def test_a_dry_run_compares_each_accounts_share_with_its_balance(
    accounts_stack, env, finetunes, tmp_path
):
    manifest = write_manifest(tmp_path, {"brand-a": 2, "brand-b": 2}, finetunes)
    set_credits(accounts_stack, "brand-a", 0.05)
    try:
        result = run_fillpipe(
            "submit", str(manifest), "--dry-run", "--json", env={**hermetic_environ(), **env}
        )
    finally:
        set_credits(accounts_stack, "brand-a", 1000)

    assert result.returncode == 1, result.stderr
    document = json.loads(result.stdout)
    assert document["batch"] is None
    a, b = document["accounts"]["brand-a"], document["accounts"]["brand-b"]
    assert (a["balance_credits"], a["enough"]) == (0.05, False)
    assert b["enough"] is True and b["estimated_credits"] > 0
    assert "account brand-a: ~" in result.stderr and "NOT ENOUGH" in result.stderr


def test_status_and_credits_show_each_account_and_the_spend_to_come(
    accounts_stack, env, rt, finetunes, tmp_path
):
    rt.ledger.account("brand-a").pause("held by the test")
    manifest = write_manifest(tmp_path, {"brand-a": 3, "brand-b": 1}, finetunes)
    batch = intake.submit(rt, str(manifest)).batch_id
    try:
        shell = {**hermetic_environ(), **env}
        status = run_fillpipe("status", "--json", env=shell)
        credits = run_fillpipe("credits", "--json", env=shell)
        table = run_fillpipe("status", env=shell)
    finally:
        resume_account(env, "brand-a")
    wait_until_done(rt.ledger, batch, timeout_s=DONE_TIMEOUT_S)

    assert status.returncode == 0, status.stderr
    accounts = {each["account"]: each for each in json.loads(status.stdout)["accounts"]}
    assert accounts["brand-a"]["paused"] == "held by the test"
    assert accounts["brand-a"]["to_come_jobs"] == 3
    assert (accounts["brand-a"]["slots"], accounts["brand-b"]["slots"]) == (3, 5)
    assert accounts["brand-b"]["balance_credits"] > 0
    assert accounts["brand-b"]["spent_today_credits"] >= 0
    balances = {each["account"]: each for each in json.loads(credits.stdout)["accounts"]}
    assert balances["brand-a"]["to_come_jobs"] == 3
    assert balances["brand-a"]["flavor"] == "bfl" and balances["brand-b"]["flavor"] == "cometapi"
    header, *lines = table.stdout.splitlines()
    assert header.split() == [
        "account",
        "flavor",
        "slots",
        "today",
        "balance",
        "to-come",
        "jobs",
        "state",
    ]
    assert any(line.startswith("brand-a") and "PAUSED: held by the test" in line for line in lines)
