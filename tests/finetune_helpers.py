"""For the finetune and credits tests: the emulator as its own process on a free
loopback port (as `fillpipe emulator` runs), its admin API, and training folders."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from fillpipe.servers.subcommands import HttpService
from tests.stacks import hermetic_environ

KEY_A, KEY_B, KEY_UNUSED = "key-a", "key-b", "key-c"
ADMIN_TOKEN = "admin-token"
# key-b starts with fewer credits, so each account's balance is its own.
CREDITS_A, CREDITS_B = 1000, 250
EMULATOR_KNOBS = {
    "API_KEYS": f"{KEY_A},{KEY_B},{KEY_UNUSED}",
    "ACCOUNTS": f'{{"{KEY_B}": {{"credits": {CREDITS_B}}}}}',
    "INITIAL_CREDITS": str(CREDITS_A),
    "ADMIN_TOKEN": ADMIN_TOKEN,
    # Training stays Pending for a second, so --wait sees it progress.
    "LATENCY_BASE_S": "1.0",
    "LATENCY_PER_MP_S": "0",
    "LATENCY_JITTER_S": "0",
}


@contextmanager
def emulator_process(log_dir: Path, **knobs: str) -> Iterator[str]:
    """`fillpipe emulator` with `EMULATOR_KNOBS` and `knobs` (FILLPIPE_EMULATOR_<NAME>);
    yields its base URL and stops it afterwards."""
    env = hermetic_environ()
    for name, value in {**EMULATOR_KNOBS, **knobs}.items():
        env[f"FILLPIPE_EMULATOR_{name.upper()}"] = value
    service = HttpService("emulator", log_dir / "emulator.log", env=lambda _url: env)
    service.start(timeout_s=60)
    try:
        yield service.url
    finally:
        service.stop()


def admin(base_url: str) -> httpx.Client:
    """A client for the emulator's admin API (`/admin/tasks`, `/admin/stats`)."""
    return httpx.Client(base_url=base_url, headers={"x-admin-token": ADMIN_TOKEN}, timeout=10.0)


def tasks_of(base_url: str, key: str) -> list[dict[str, object]]:
    """Every task the emulator holds for `key` (trainings included)."""
    with admin(base_url) as client:
        tasks = client.get("/admin/tasks").raise_for_status().json()["tasks"]
    return [task for task in tasks if task["owner"] == key]


def write_images(folder: Path, count: int, *, size_px: tuple[int, int] = (320, 256)) -> None:
    """`count` textured PNGs, `photo-NN.png`, of `size_px` (width, height), in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    width, height = size_px
    for index in range(count):
        pixels = np.random.default_rng(index).integers(0, 256, size=(height, width, 3))
        Image.fromarray(pixels.astype(np.uint8)).save(folder / f"photo-{index:02d}.png")
