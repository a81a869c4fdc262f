"""The bench's baseline script against the real emulator under uvicorn: it frees a slot
only when the task's webhook arrives, and downloads every result."""

from __future__ import annotations

import asyncio
import itertools
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn

from bench.script import run_script
from emulator.app import create_app
from tests.emulator.helpers import (
    ADMIN_TOKEN,
    AUTH,
    KEY,
    fill_body,
    finetune_body,
    make_config,
    wait_until,
)

pytestmark = pytest.mark.timeout(60)

ADMIN = {"x-admin-token": ADMIN_TOKEN}
LATENCY_S = 0.2
WEBHOOK_DELAY_S = 0.3


@pytest.fixture
def emulator() -> Iterator[httpx.Client]:
    """The emulator (3 active tasks per key, 0.2 s a task) under uvicorn on a free
    127.0.0.1 port, in a thread; a client on it that trained a finetune."""
    config = make_config(latency_base_s=LATENCY_S, max_active_tasks=3)
    server = uvicorn.Server(uvicorn.Config(create_app(config), log_level="warning"))
    listener = socket.create_server(("127.0.0.1", 0))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]})
    thread.start()
    try:
        wait_until(lambda: server.started)
        base_url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        with httpx.Client(base_url=base_url, timeout=10.0) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join()
        listener.close()


def train(client: httpx.Client) -> str:
    finetune_id: str = client.post("/v1/finetune", json=finetune_body(), headers=AUTH).json()[
        "finetune_id"
    ]
    wait_until(
        lambda: (
            client.get(f"/v1/get_result?id={finetune_id}", headers=AUTH).json()["status"] == "Ready"
        )
    )
    return finetune_id


def fills(client: httpx.Client, finetune_id: str) -> list[dict[str, Any]]:
    tasks = client.get("/admin/tasks", headers=ADMIN).json()["tasks"]
    return sorted((t for t in tasks if t["id"] != finetune_id), key=lambda t: t["created_at"])


def test_a_slot_is_taken_again_only_after_the_webhook(emulator: httpx.Client) -> None:
    finetune_id = train(emulator)
    # Webhooks go out 0.3 s after a task turns Ready: a client that moved on at the
    # finish (or at its POST's answer) would submit well before its webhook arrives.
    delay = {"webhook_delay_s": WEBHOOK_DELAY_S, "webhook_delay_probability": 1}
    assert emulator.put("/admin/faults", json=delay, headers=ADMIN).is_success
    bodies = [fill_body(finetune_id=finetune_id, seed=seed) for seed in range(3)]

    statuses = asyncio.run(run_script(str(emulator.base_url), KEY, bodies, slots=1))

    tasks = fills(emulator, finetune_id)
    assert statuses == ["SUCCESS"] * 3
    assert [t["seed"] for t in tasks] == [0, 1, 2]
    for done, taken in itertools.pairwise(tasks):
        # The webhook leaves WEBHOOK_DELAY_S after the finish; `webhook_at` is when the
        # emulator saw its 2xx answer, which may come after the script's next POST.
        sent_at = done["finished_at"] + WEBHOOK_DELAY_S
        assert done["webhook_at"] >= sent_at
        assert taken["created_at"] >= sent_at


def test_as_wide_as_its_slots_and_a_429_is_retried(emulator: httpx.Client) -> None:
    finetune_id = train(emulator)
    bodies = [fill_body(finetune_id=finetune_id, seed=seed) for seed in range(4)]
    started = time.time()

    statuses = asyncio.run(run_script(str(emulator.base_url), KEY, bodies, slots=4))

    tasks = fills(emulator, finetune_id)
    assert statuses == ["SUCCESS"] * 4
    # Three tasks at once (the emulator's limit); the fourth POST got a 429 and came
    # back after its Retry-After, once a slot had freed.
    assert all(t["created_at"] - started < LATENCY_S for t in tasks[:3])
    assert tasks[3]["created_at"] >= min(t["finished_at"] for t in tasks[:3])
    stats = emulator.get("/admin/stats", headers=ADMIN).json()["accounts"][KEY]
    assert stats["active_tasks_high_water"] == 3
