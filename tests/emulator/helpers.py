"""Helpers for the emulator tests: a driven clock, images, a webhook receiver, and
short-cuts for driving the API through a `TestClient`."""

from __future__ import annotations

import base64
import io
import threading
import time
import zipfile
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
from PIL import Image
from starlette.testclient import TestClient

from emulator.config import EmulatorConfig

KEY = "key-a"
OTHER_KEY = "key-b"
AUTH = {"x-key": KEY}
OTHER_AUTH = {"x-key": OTHER_KEY}
ADMIN_TOKEN = "admin-token"
WIDTH, HEIGHT = 64, 48
MASK_BOX = (16, 12, 48, 36)  # left, top, right, bottom
DEADLINE_S = 10.0
POLL_INTERVAL_S = 0.01
FILL = "/v1/flux-pro-1.0-fill"
FILL_FINETUNED = "/v1/flux-pro-1.0-fill-finetuned"


class Clock:
    """A clock the tests move by hand."""

    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class WebhookReceiver:
    """A `MockTransport` handler that records webhook requests and answers `statuses` in
    turn (the last one repeats); `None` stands for a connection error."""

    def __init__(self, *statuses: int | None) -> None:
        self._statuses = list(statuses) or [200]
        self.requests: list[httpx.Request] = []
        self._lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            status = self._statuses[min(len(self.requests), len(self._statuses) - 1)]
            self.requests.append(request)
        if status is None:
            raise httpx.ConnectError("receiver down", request=request)
        return httpx.Response(status)

    def wait_for(self, count: int) -> list[httpx.Request]:
        wait_until(lambda: len(self.requests) >= count)
        return self.requests


def make_config(**overrides: Any) -> EmulatorConfig:
    """A test config: two keys, no latency, no retry backoff, admin enabled."""
    settings: dict[str, Any] = {
        "api_keys": (KEY, OTHER_KEY),
        "latency_base_s": 0.0,
        "latency_per_mp_s": 0.0,
        "latency_jitter_s": 0.0,
        "webhook_retry_backoff_s": 0.0,
        "delivery_signing_key": "test-signing-key",
        "admin_token": ADMIN_TOKEN,
    }
    return EmulatorConfig(**{**settings, **overrides})


def wait_until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met before the deadline")
        time.sleep(POLL_INTERVAL_S)


def photo(width: int = WIDTH, height: int = HEIGHT, *, seed: int = 0) -> Image.Image:
    """A deterministic, textured RGB picture."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width]
    base = np.stack([xs * 255 // width, ys * 255 // height, (xs + ys) % 256], axis=2)
    noise = rng.integers(0, 40, size=(height, width, 3))
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))


def box_mask(
    width: int = WIDTH, height: int = HEIGHT, box: tuple[int, ...] = MASK_BOX
) -> Image.Image:
    mask = Image.new("L", (width, height), 0)
    mask.paste(255, box)
    return mask


def mask_array(box: tuple[int, ...] = MASK_BOX) -> np.ndarray:
    return np.array(box_mask(box=box)) >= 128


def inner_mask(inset_px: int) -> np.ndarray:
    """The repaint mask less its outer `inset_px` pixels (0: the whole mask)."""
    left, top, right, bottom = MASK_BOX
    return mask_array((left + inset_px, top + inset_px, right - inset_px, bottom - inset_px))


def encoded(image: Image.Image, image_format: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format)
    return buffer.getvalue()


def b64(data: bytes | Image.Image) -> str:
    raw = encoded(data) if isinstance(data, Image.Image) else data
    return base64.b64encode(raw).decode()


def fill_body(**overrides: Any) -> dict[str, Any]:
    body = {
        "image": b64(photo()),
        "mask": b64(box_mask()),
        "prompt": "a red sofa",
        "seed": 42,
        "output_format": "png",
    }
    return {**body, **overrides}


def zip_b64(entries: dict[str, bytes]) -> str:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return b64(buffer.getvalue())


def training_zip(*images: Image.Image, extra: dict[str, bytes] | None = None) -> str:
    """A base64 training zip of `images` (two brand-coloured ones by default)."""
    entries = {
        f"image_{index}.png": encoded(image) for index, image in enumerate(images or brand_images())
    }
    return zip_b64({**entries, **(extra or {})})


def brand_images() -> list[Image.Image]:
    red = Image.new("RGB", (32, 32), (220, 30, 40))
    halves = Image.new("RGB", (32, 32), (250, 210, 20))
    halves.paste((220, 30, 40), (0, 0, 32, 16))
    return [red, halves]


def finetune_body(**overrides: Any) -> dict[str, Any]:
    body = {"file_data": training_zip(), "finetune_comment": "brand", "mode": "style"}
    return {**body, **overrides}


def wait_for_final(
    client: TestClient, polling_url: str, headers: dict[str, str] = AUTH
) -> dict[str, Any]:
    """Poll get_result until the task is no longer Pending."""
    answers: list[dict[str, Any]] = []

    def final() -> bool:
        answers.append(client.get(polling_url, headers=headers).json())
        return answers[-1]["status"] != "Pending"

    wait_until(final)
    return answers[-1]


def submit(
    client: TestClient, path: str = FILL, headers: dict[str, str] = AUTH, **overrides: Any
) -> dict[str, Any]:
    response = client.post(path, json=fill_body(**overrides), headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def run_fill(client: TestClient, path: str = FILL, **overrides: Any) -> dict[str, Any]:
    """Submit a fill and wait for its final get_result."""
    return wait_for_final(client, submit(client, path, **overrides)["polling_url"])


def download(client: TestClient, result: dict[str, Any]) -> bytes:
    response = client.get(result["result"]["sample"])
    assert response.status_code == 200, response.text
    return response.content


def train_finetune(
    client: TestClient, headers: dict[str, str] = AUTH, *, prefix: str = "/v1", **overrides: Any
) -> str:
    """Create a finetune through the flavour at `prefix` and wait until it is Ready; its id."""
    response = client.post(f"{prefix}/finetune", json=finetune_body(**overrides), headers=headers)
    assert response.status_code == 200, response.text
    finetune_id: str = response.json()["finetune_id"]
    result = wait_for_final(client, f"{prefix}/get_result?id={finetune_id}", headers)
    assert result["status"] == "Ready", result
    return finetune_id
