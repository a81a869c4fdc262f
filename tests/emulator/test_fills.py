"""A fill from submit to downloaded result, through the HTTP API."""

import io
from collections.abc import Callable

import numpy as np
import pytest
from PIL import Image
from starlette.testclient import TestClient

from tests.emulator.helpers import (
    AUTH,
    FILL_FINETUNED,
    HEIGHT,
    OTHER_AUTH,
    WIDTH,
    Clock,
    b64,
    download,
    mask_array,
    photo,
    run_fill,
    submit,
    train_finetune,
    wait_for_final,
)

pytestmark = pytest.mark.timeout(60)


def pixels(data: bytes) -> np.ndarray:
    return np.array(Image.open(io.BytesIO(data)).convert("RGB"))


@pytest.mark.timeout(30)
def test_a_task_is_pending_with_growing_progress_then_ready(make_client, clock: Clock) -> None:
    client = make_client(latency_base_s=1.0)
    submitted = submit(client)

    first = client.get(submitted["polling_url"], headers=AUTH).json()
    clock.advance(0.5)
    halfway = client.get(submitted["polling_url"], headers=AUTH).json()
    final = wait_for_final(client, submitted["polling_url"])

    assert (first["status"], first["result"], first["progress"]) == ("Pending", None, 0.0)
    assert (halfway["status"], halfway["progress"]) == ("Pending", 0.5)
    assert final["status"] == "Ready"
    assert final["progress"] == 1.0


def test_the_submit_answer(client: TestClient) -> None:
    submitted = submit(client, image=b64(photo(1000, 500)), mask=b64(Image.new("L", (1000, 500))))

    assert submitted["polling_url"] == f"http://testserver/v1/get_result?id={submitted['id']}"
    assert (submitted["input_mp"], submitted["output_mp"]) == (0.5, 0.5)
    assert submitted["cost"] == 2.5  # 5 credits per megapixel


def test_the_finetuned_fill_costs_more(client: TestClient) -> None:
    finetune_id = train_finetune(client)

    submitted = submit(client, FILL_FINETUNED, finetune_id=finetune_id)

    assert submitted["cost"] == 0.03  # 64 x 48 px at 8 credits/MP, rounded up
    assert client.get("/v1/credits", headers=AUTH).json() == {"credits": 999.97}


def test_the_ready_result(client: TestClient, clock: Clock) -> None:
    result = run_fill(client, prompt="a green lamp", seed=7)

    assert result["status"] == "Ready"
    assert result["details"] is None
    assert result["result"]["prompt"] == "a green lamp"
    assert result["result"]["seed"] == 7
    assert result["result"]["start_time"] == result["result"]["end_time"] == clock.now
    assert result["result"]["duration"] == 0
    assert result["result"]["sample"].startswith("http://testserver/delivery/")


@pytest.mark.parametrize(
    ("output_format", "pil_format", "media_type"),
    [
        ("png", "PNG", "image/png"),
        ("jpeg", "JPEG", "image/jpeg"),
        ("webp", "WEBP", "image/webp"),
    ],
)
def test_the_sample_in_each_format(
    client: TestClient, output_format: str, pil_format: str, media_type: str
) -> None:
    result = run_fill(client, output_format=output_format)
    response = client.get(result["result"]["sample"])

    image = Image.open(io.BytesIO(response.content))
    assert response.headers["content-type"] == media_type
    assert (image.format, image.size, image.mode) == (pil_format, (WIDTH, HEIGHT), "RGB")


def test_without_drift_only_masked_pixels_change(make_client) -> None:
    client = make_client(drift=False)
    output = pixels(download(client, run_fill(client)))
    original = np.array(photo())
    repaint = mask_array()

    assert np.array_equal(output[~repaint], original[~repaint])
    assert np.mean(np.any(output[repaint] != original[repaint], axis=1)) > 0.9


def test_with_drift_kept_pixels_shift_a_little_and_unevenly(client: TestClient) -> None:
    # The default, as the provider re-encodes the whole image: every kept pixel moves by a
    # few units, and far-apart parts of the image move differently.
    output = pixels(download(client, run_fill(client))).astype(int)
    original = np.array(photo()).astype(int)
    keep = ~mask_array()

    moved = output - original
    assert 2 <= np.abs(moved[keep]).mean() <= 10
    assert np.abs(moved[keep]).max() <= 45  # softening a noisy photo, plus the drift
    left, right = moved[:, :8][keep[:, :8]], moved[:, -8:][keep[:, -8:]]
    assert np.abs(left.mean(axis=0) - right.mean(axis=0)).max() > 1


def test_the_alpha_channel_is_the_mask_without_one(make_client) -> None:
    client = make_client(drift=False)
    rgba = photo().convert("RGBA")
    rgba.putalpha(Image.fromarray(np.where(mask_array(), 0, 255).astype(np.uint8)))

    output = pixels(download(client, run_fill(client, image=b64(rgba), mask=None)))

    original, repaint = np.array(photo()), mask_array()
    assert np.array_equal(output[~repaint], original[~repaint])
    assert not np.array_equal(output[repaint], original[repaint])


def test_same_seed_same_bytes_other_seed_other_bytes(client: TestClient) -> None:
    first = download(client, run_fill(client, seed=1234))
    again = download(client, run_fill(client, seed=1234))
    other = download(client, run_fill(client, seed=1235))

    assert first == again
    assert first != other


@pytest.mark.parametrize("drift", [True, False])
def test_the_same_request_gives_the_same_bytes_with_or_without_drift(
    make_client, drift: bool
) -> None:
    client = make_client(drift=drift)

    assert download(client, run_fill(client, seed=99)) == download(
        client, run_fill(client, seed=99)
    )


@pytest.mark.parametrize(
    ("scale", "size"), [(0.5, (WIDTH // 2, HEIGHT // 2)), (2.0, (WIDTH * 2, HEIGHT * 2))]
)
def test_the_result_comes_in_the_configured_size(
    make_client, scale: float, size: tuple[int, int]
) -> None:
    client = make_client(result_scale=scale)

    image = Image.open(io.BytesIO(download(client, run_fill(client))))

    assert image.size == size


def test_the_prompt_changes_the_result(client: TestClient) -> None:
    assert download(client, run_fill(client, prompt="sea")) != download(
        client, run_fill(client, prompt="sky")
    )


def test_without_a_seed_one_is_drawn_and_reported(client: TestClient) -> None:
    first = run_fill(client, seed=None)
    second = run_fill(client, seed=None)

    seeds = {first["result"]["seed"], second["result"]["seed"]}
    assert all(isinstance(seed, int) for seed in seeds)
    assert len(seeds) == 2
    assert download(client, first) == download(
        client, run_fill(client, seed=first["result"]["seed"])
    )


def test_a_seeded_emulator_repeats_its_draws(make_client: Callable[..., TestClient]) -> None:
    # The seeds drawn for submits without one come from the same generator as the
    # latencies, so equal seeds mean the whole sequence of draws repeats.
    def drawn_seeds(seed: int) -> list[int]:
        client = make_client(seed=seed)
        return [run_fill(client, seed=None)["result"]["seed"] for _ in range(3)]

    assert drawn_seeds(5) == drawn_seeds(5)
    assert drawn_seeds(5) != drawn_seeds(6)


def test_cometapi_polls_under_its_own_prefix(client: TestClient) -> None:
    bearer = {"authorization": "Bearer key-a"}
    submitted = client.post(
        "/flux/v1/flux-pro-1.0-fill",
        json={"image": b64(photo()), "mask": b64(Image.new("L", (WIDTH, HEIGHT), 255))},
        headers=bearer,
    ).json()

    assert submitted["polling_url"].startswith("http://testserver/flux/v1/get_result?id=")
    assert wait_for_final(client, submitted["polling_url"], bearer)["status"] == "Ready"


def test_links_use_the_public_url(make_client) -> None:
    client = make_client(public_url="https://emulator.example/")

    submitted = submit(client)
    result = wait_for_final(client, f"/v1/get_result?id={submitted['id']}")

    assert submitted["polling_url"].startswith("https://emulator.example/v1/get_result?id=")
    assert result["result"]["sample"].startswith("https://emulator.example/delivery/")


def test_keys_do_not_see_each_others_tasks(client: TestClient) -> None:
    submitted = submit(client)

    result = client.get(submitted["polling_url"], headers=OTHER_AUTH).json()

    assert result["status"] == "Task not found"


def test_an_unknown_id_is_not_found(client: TestClient) -> None:
    response = client.get("/v1/get_result?id=nope", headers=AUTH)

    assert response.status_code == 200
    assert response.json() == {
        "id": "nope",
        "status": "Task not found",
        "result": None,
        "progress": None,
        "details": None,
        "preview": None,
    }


def test_a_task_expires_after_its_ttl(make_client, clock: Clock) -> None:
    client = make_client(task_ttl_s=60)
    result = run_fill(client)

    clock.advance(59)
    assert client.get(f"/v1/get_result?id={result['id']}", headers=AUTH).json()["status"] == "Ready"
    clock.advance(1)
    assert (
        client.get(f"/v1/get_result?id={result['id']}", headers=AUTH).json()["status"]
        == "Task not found"
    )
