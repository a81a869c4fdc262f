"""The provider's re-encoding (colour drift and softening) and the result's size, tested
on the pure functions."""

import numpy as np
import pytest

from emulator.reencode import DRIFT_MAX_SHIFT, DRIFT_MIN_SHIFT, drift_field, reencoded, rescaled
from tests.emulator.helpers import HEIGHT, WIDTH, photo

pytestmark = pytest.mark.timeout(60)

IMAGE = np.array(photo())
FLAT = np.full((HEIGHT, WIDTH, 3), 120, dtype=np.uint8)
# Cubic interpolation overshoots the grid's values a little.
MAX_SHIFT_BOUND = 1.5 * DRIFT_MAX_SHIFT
# Softening a noisy photo moves single pixels by up to about its noise.
MAX_PHOTO_CHANGE = 45


def shift(before: np.ndarray, after: np.ndarray) -> np.ndarray:
    return after.astype(int) - before.astype(int)


@pytest.mark.parametrize("seed", [0, 1, 42, -7, 2**40])
def test_the_drift_is_small_and_bounded(seed: int) -> None:
    flat_shift = shift(FLAT, reencoded(FLAT, seed))
    photo_shift = shift(IMAGE, reencoded(IMAGE, seed))

    assert 2 <= np.abs(flat_shift).mean() <= DRIFT_MAX_SHIFT
    assert np.abs(flat_shift).max() <= MAX_SHIFT_BOUND
    assert 2 <= np.abs(photo_shift).mean() <= 10
    assert np.abs(photo_shift).max() <= MAX_PHOTO_CHANGE


def test_the_drift_differs_across_the_image() -> None:
    # One global offset cannot undo it: far-apart parts of the image shift differently.
    moved = shift(FLAT, reencoded(FLAT, 42))
    left, right = moved[:, : WIDTH // 4], moved[:, -WIDTH // 4 :]
    top, bottom = moved[: HEIGHT // 4], moved[-HEIGHT // 4 :]

    left_right = np.abs(left.mean(axis=(0, 1)) - right.mean(axis=(0, 1))).max()
    top_bottom = np.abs(top.mean(axis=(0, 1)) - bottom.mean(axis=(0, 1))).max()
    assert max(left_right, top_bottom) > 2


def test_the_drift_is_per_channel() -> None:
    moved = shift(FLAT, reencoded(FLAT, 42)).reshape(-1, 3)

    assert not np.array_equal(moved[:, 0], moved[:, 1])
    assert not np.array_equal(moved[:, 1], moved[:, 2])


def test_the_field_has_the_documented_amplitude() -> None:
    field = drift_field(512, 384, seed=3)

    assert field.shape == (384, 512, 3)
    assert field.dtype == np.float32
    assert DRIFT_MIN_SHIFT / 2 <= np.abs(field).mean() <= DRIFT_MAX_SHIFT
    assert np.abs(field).max() <= MAX_SHIFT_BOUND


def test_detail_is_softened() -> None:
    def detail(image: np.ndarray) -> float:
        return float(np.abs(np.diff(image.astype(int), axis=1)).mean())

    assert detail(reencoded(IMAGE, 42)) < 0.8 * detail(IMAGE)


def test_the_same_seed_gives_the_same_pixels_another_seed_others() -> None:
    assert np.array_equal(reencoded(IMAGE, 42), reencoded(IMAGE, 42))
    assert not np.array_equal(reencoded(IMAGE, 42), reencoded(IMAGE, 43))


def test_the_input_is_not_modified() -> None:
    before = IMAGE.copy()
    reencoded(IMAGE, 42)

    assert np.array_equal(IMAGE, before)


@pytest.mark.parametrize("size", [(1, 1), (1, 9), (7, 1), (5, 3)])
def test_tiny_images_are_reencoded(size: tuple[int, int]) -> None:
    width, height = size
    tiny = np.full((height, width, 3), 100, dtype=np.uint8)

    assert reencoded(tiny, 1).shape == tiny.shape


@pytest.mark.parametrize(
    ("scale", "size"),
    [(1.0, (WIDTH, HEIGHT)), (0.5, (32, 24)), (2.0, (128, 96)), (0.25, (16, 12)), (1.5, (96, 72))],
)
def test_rescaled_sizes(scale: float, size: tuple[int, int]) -> None:
    output = rescaled(IMAGE, scale)

    assert (output.shape[1], output.shape[0]) == size
    assert output.dtype == np.uint8


def test_rescaling_rounds_and_keeps_at_least_a_pixel() -> None:
    assert rescaled(np.zeros((3, 5, 3), dtype=np.uint8), 0.25).shape == (1, 1, 3)
    assert rescaled(np.zeros((10, 30, 3), dtype=np.uint8), 0.25).shape == (2, 8, 3)


def test_rescaling_keeps_the_picture() -> None:
    there_and_back = rescaled(rescaled(IMAGE, 2.0), 0.5)

    assert np.abs(shift(IMAGE, there_and_back)).mean() < 3
