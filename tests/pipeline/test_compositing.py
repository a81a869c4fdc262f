"""Paste-back: kept pixels stay the source's, the seam is hidden, the figures are right.

Every image is synthetic, made here with numpy and Pillow: a flat-coloured source with
a little grain, a mask (an ellipse: binary, with a gradient edge, or as the source's
alpha), and a result that is the source plus a smooth colour shift that varies across
the image, plus an edit deep inside the mask that fades to the source's colour before
the mask's edge.
"""

from __future__ import annotations

import io
import math

import cv2
import numpy as np
import pytest
from PIL import Image

from pipeline.compositing import Quality, finish
from pipeline.compositing_paste import blend_alpha, paste
from pipeline.compositing_quality import drift, seam
from pipeline.errors import InputError
from pipeline.models import CompositeOptions

pytestmark = pytest.mark.timeout(60)

HEIGHT, WIDTH = 192, 256
FLAT = np.array([120, 140, 160], np.float32)
EDIT = np.array([200, 60, 40], np.float32)
GRAIN_LEVELS = 0.5
SHIFT_LEVELS = 6.0
# The edit is absent within EDIT_CLEAR_PX of the mask's edge and full EDIT_FADE_PX further in.
EDIT_CLEAR_PX = 10
EDIT_FADE_PX = 20
# Rounding the output to whole levels moves a pixel by up to 0.5 level: the seam's
# local means of a flat colour can differ by that much with a perfect correction.
SEAM_EPSILON = 0.5
# JPEG q95 4:4:4 on these images: what the tests below allow on the kept pixels.
JPEG_MEAN_TOLERANCE = 1.5
JPEG_MAX_TOLERANCE = 6
OPTIONS = CompositeOptions()


def encoded(pixels: np.ndarray, image_format: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=image_format)
    return buffer.getvalue()


def decoded(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def flat_source(seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    grain = rng.normal(0, GRAIN_LEVELS, (HEIGHT, WIDTH, 3))
    return np.clip(FLAT + grain, 0, 255).round().astype(np.uint8)


def ellipse_mask() -> np.ndarray:
    mask = np.zeros((HEIGHT, WIDTH), np.uint8)
    cv2.ellipse(mask, (WIDTH // 2, HEIGHT // 2), (60, 45), 0, 0, 360, 255, -1)
    return mask


def soft_mask() -> np.ndarray:
    """The ellipse with a gradient edge: 0 outside, rising to 255 over 12 px inside."""
    distance = cv2.distanceTransform(ellipse_mask(), cv2.DIST_L2, 5)
    return np.clip(distance * (255 / 12), 0, 255).round().astype(np.uint8)


def smooth_shift() -> np.ndarray:
    """A colour shift of amplitude SHIFT_LEVELS varying across the image, per channel."""
    rows, columns = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    phases = (0.0, 2.0, 4.0)
    waves = [np.sin(2 * math.pi * (columns / WIDTH + rows / HEIGHT) + p) for p in phases]
    return SHIFT_LEVELS * np.stack(waves, axis=-1)


def provider_result(source: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The source shifted everywhere, with an edit deep inside the mask."""
    distance = cv2.distanceTransform((mask > 0).astype(np.uint8), cv2.DIST_L2, 5)
    fade = np.clip((distance - EDIT_CLEAR_PX) / EDIT_FADE_PX, 0, 1)[..., None]
    result = source + smooth_shift() + fade * (EDIT - FLAT)
    return np.clip(result, 0, 255).round().astype(np.uint8)


def kept_noise(source: np.ndarray, mask: np.ndarray) -> float:
    """Mean |difference between horizontal neighbours| over the kept area."""
    kept = (mask[:, 1:] == 0) & (mask[:, :-1] == 0)
    steps = np.abs(np.diff(source.astype(np.int16), axis=1))
    return float(steps[kept].mean())


def with_alpha(source: np.ndarray, mask: np.ndarray) -> np.ndarray:
    return np.dstack([source, 255 - mask])


@pytest.mark.parametrize("mask", [ellipse_mask(), soft_mask()], ids=["binary", "soft"])
def test_png_output_keeps_every_kept_pixel_exactly(mask: np.ndarray):
    source = flat_source()
    result = provider_result(source, mask)

    finished = finish(
        encoded(source), encoded(mask), encoded(result), options=OPTIONS, output_format="png"
    )

    output = decoded(finished.data)
    assert finished.format == "PNG"
    assert output.shape == source.shape
    kept = mask == 0
    assert np.array_equal(output[kept], source[kept])
    assert not np.array_equal(output[mask == 255], source[mask == 255])


def test_without_a_mask_the_sources_alpha_is_the_mask():
    source, mask = flat_source(), soft_mask()
    result = provider_result(source, mask)

    finished = finish(
        encoded(with_alpha(source, mask)),
        None,
        encoded(result),
        options=OPTIONS,
        output_format="png",
    )

    output = Image.open(io.BytesIO(finished.data))
    assert output.mode == "RGB"
    kept = mask == 0
    assert np.array_equal(np.asarray(output)[kept], source[kept])
    with_mask = finish(
        encoded(source), encoded(mask), encoded(result), options=OPTIONS, output_format="png"
    )
    assert np.array_equal(decoded(with_mask.data), np.asarray(output))


def test_jpeg_output_keeps_kept_pixels_within_the_stated_tolerance():
    source, mask = flat_source(), ellipse_mask()

    finished = finish(
        encoded(source),
        encoded(mask),
        encoded(provider_result(source, mask)),
        options=OPTIONS,
        output_format="jpeg",
    )

    assert finished.format == "JPEG"
    assert Image.open(io.BytesIO(finished.data)).format == "JPEG"
    kept = mask == 0
    error = np.abs(decoded(finished.data)[kept].astype(np.int16) - source[kept])
    assert error.mean() < JPEG_MEAN_TOLERANCE
    assert error.max() <= JPEG_MAX_TOLERANCE


@pytest.mark.parametrize("factor", [0.5, 1.5])
def test_a_result_of_another_size_is_resampled_to_the_sources(factor: float):
    source, mask = flat_source(), ellipse_mask()
    size = (round(WIDTH * factor), round(HEIGHT * factor))
    result = Image.fromarray(provider_result(source, mask)).resize(size)

    finished = finish(
        encoded(source),
        encoded(mask),
        encoded(np.asarray(result)),
        options=OPTIONS,
        output_format="png",
    )

    output = decoded(finished.data)
    assert output.shape == source.shape
    assert finished.quality.resized
    assert np.array_equal(output[mask == 0], source[mask == 0])


def test_mode_none_delivers_the_result_unchanged_and_still_measures_it():
    source, mask = flat_source(), ellipse_mask()
    result = encoded(provider_result(source, mask), "JPEG")

    finished = finish(
        encoded(source),
        encoded(mask),
        result,
        options=CompositeOptions(mode="none"),
        output_format="png",
    )

    assert finished.data == result
    assert finished.format == "JPEG"
    assert not finished.quality.composited
    assert not finished.quality.resized
    assert finished.quality.drift_mean > 1


def test_drift_is_zero_when_the_kept_pixels_came_back_unchanged():
    source, mask = flat_source(), ellipse_mask()
    result = source.copy()
    result[mask > 0] = EDIT.astype(np.uint8)

    assert drift(source, mask, result) == (0.0, 0.0)
    quality = finish(
        encoded(source), encoded(mask), encoded(result), options=OPTIONS, output_format="png"
    ).quality
    assert (quality.drift_mean, quality.drift_p99) == (0.0, 0.0)


def test_drift_measures_a_known_shift_of_the_kept_pixels():
    source, mask = flat_source(), ellipse_mask()
    result = source + np.uint8(5)
    result[mask > 0] = EDIT.astype(np.uint8)

    assert drift(source, mask, result) == (5.0, 5.0)
    every_pixel_repainted = np.full_like(mask, 255)
    assert drift(source, every_pixel_repainted, result) == (0.0, 0.0)


def test_colour_matching_hides_the_providers_local_shift_at_the_seam():
    source, mask = flat_source(), ellipse_mask()
    result = provider_result(source, mask)
    bound = kept_noise(source, mask) + SEAM_EPSILON

    matched = finish(
        encoded(source), encoded(mask), encoded(result), options=OPTIONS, output_format="png"
    )
    plain = finish(
        encoded(source),
        encoded(mask),
        encoded(result),
        options=CompositeOptions(color_match=False),
        output_format="png",
    )

    assert matched.quality.seam <= bound
    assert plain.quality.seam > 1.5 * bound
    assert plain.quality.seam > 4 * matched.quality.seam
    # The score counts only what the output adds to the source's own step at the edge.
    output_seam = seam(decoded(matched.data), mask)
    own_seam = seam(source, mask)
    assert matched.quality.seam == pytest.approx(max(0.0, output_seam - own_seam), abs=0.01)


@pytest.mark.parametrize("feather_px", [0, 4, 16])
def test_the_blend_stays_inside_the_masks_edge(feather_px: int):
    source, mask = flat_source(), ellipse_mask()
    result = provider_result(source, mask)

    alpha = blend_alpha(mask, feather_px)
    output = paste(source, mask, result, feather_px=feather_px, color_match=True)

    assert np.all(alpha[mask == 0] == 0)
    assert alpha.max() == 1.0
    just_outside = (cv2.dilate(mask, np.ones((3, 3), np.uint8)) > 0) & (mask == 0)
    assert just_outside.any()
    assert np.array_equal(output[just_outside], source[just_outside])
    deep_inside = cv2.distanceTransform(mask, cv2.DIST_L2, 5) > feather_px
    assert np.all(alpha[deep_inside] == 1.0)


def test_a_soft_mask_blends_by_its_own_values():
    mask = soft_mask()

    alpha = blend_alpha(mask, feather_px=0)

    assert np.array_equal(alpha, mask / np.float32(255))


def test_a_mask_without_an_edge_has_no_seam():
    source = flat_source()
    result = provider_result(source, ellipse_mask())
    keep_all = np.zeros((HEIGHT, WIDTH), np.uint8)
    repaint_all = np.full((HEIGHT, WIDTH), 255, np.uint8)

    kept = finish(
        encoded(source), encoded(keep_all), encoded(result), options=OPTIONS, output_format="png"
    )
    repainted = finish(
        encoded(source), encoded(repaint_all), encoded(result), options=OPTIONS, output_format="png"
    )

    assert np.array_equal(decoded(kept.data), source)
    assert kept.quality.seam == 0.0
    assert np.array_equal(decoded(repainted.data), result)
    assert repainted.quality.seam == 0.0
    assert (repainted.quality.drift_mean, repainted.quality.drift_p99) == (0.0, 0.0)


def test_inputs_that_do_not_decode_or_do_not_fit_are_refused():
    source, mask = encoded(flat_source()), encoded(ellipse_mask())
    result = encoded(flat_source(seed=2))
    small_mask = encoded(np.zeros((10, 12), np.uint8))

    with pytest.raises(InputError, match="the source does not decode"):
        finish(b"not an image", mask, result, options=OPTIONS, output_format="png")
    with pytest.raises(InputError, match="the mask does not decode"):
        finish(source, b"\x89PNG broken", result, options=OPTIONS, output_format="png")
    with pytest.raises(InputError, match="the result does not decode"):
        finish(source, mask, result[:60], options=OPTIONS, output_format="png")
    with pytest.raises(InputError, match="the mask is 12x10 but the source is 256x192"):
        finish(source, small_mask, result, options=OPTIONS, output_format="png")
    with pytest.raises(InputError, match="no alpha channel and no mask"):
        finish(source, None, result, options=OPTIONS, output_format="png")


def test_options_refuse_values_out_of_range():
    with pytest.raises(ValueError, match="feather_px"):
        CompositeOptions(feather_px=65)
    with pytest.raises(ValueError, match="composite mode"):
        CompositeOptions(mode="blend")  # type: ignore[arg-type]


def test_quality_as_json_rounds_to_two_decimals():
    quality = Quality(True, False, 1.23456, 7.0, 0.3333)

    assert quality.as_json() == {
        "composited": True,
        "resized": False,
        "drift_mean": 1.23,
        "drift_p99": 7.0,
        "seam": 0.33,
    }
