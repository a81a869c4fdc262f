"""The fill's pixels, tested directly on the pure functions."""

import math

import numpy as np
import pytest

from emulator.inpaint import (
    EDGE_BLEND_PX,
    STRUCTURE_MAX_HOLE_PX,
    FillParams,
    inpaint,
    prompt_colour,
)
from emulator.style import learn_style
from tests.emulator.helpers import inner_mask, mask_array, photo

pytestmark = pytest.mark.timeout(60)

IMAGE = np.array(photo())
REPAINT = mask_array()
PARAMS = FillParams(prompt="a red sofa", seed=42)
# Where the edit has its full weight: EDGE_BLEND_PX further in than the outermost pixels.
FULL_EDIT_INSET_PX = math.ceil(EDGE_BLEND_PX) + 1


def fill(**changes: object) -> np.ndarray:
    params = FillParams(**{**PARAMS.__dict__, **changes})
    return inpaint(IMAGE, REPAINT, params)


def test_pixels_outside_the_mask_are_untouched() -> None:
    output = fill()

    assert output.dtype == np.uint8
    assert output.shape == IMAGE.shape
    assert np.array_equal(output[~REPAINT], IMAGE[~REPAINT])
    assert not np.array_equal(output[REPAINT], IMAGE[REPAINT])


def test_the_input_is_not_modified() -> None:
    before = IMAGE.copy()
    fill()

    assert np.array_equal(IMAGE, before)


def test_the_same_parameters_give_the_same_pixels() -> None:
    assert np.array_equal(fill(), fill())


@pytest.mark.parametrize(
    "change",
    [
        {"seed": 43},
        {"seed": -42},
        {"prompt": "a blue chair"},
        {"prompt": ""},
        {"steps": 15},
        {"guidance": 100},
    ],
)
def test_each_parameter_shows(change: dict[str, object]) -> None:
    assert not np.array_equal(fill(**change), fill())


def test_an_empty_mask_changes_nothing() -> None:
    nothing = np.zeros_like(REPAINT)

    assert np.array_equal(inpaint(IMAGE, nothing, PARAMS), IMAGE)


def test_a_full_mask_repaints_everything() -> None:
    everything = np.ones_like(REPAINT)

    output = inpaint(IMAGE, everything, PARAMS)

    assert output.shape == IMAGE.shape
    assert np.mean(np.any(output != IMAGE, axis=2)) > 0.9


def test_the_prompt_colour_is_stable_across_runs() -> None:
    # From SHA-256, so it never depends on PYTHONHASHSEED.
    assert prompt_colour("a red sofa") == prompt_colour("a red sofa")
    assert np.allclose(prompt_colour(""), (216.75, 75.86, 169.35), atol=0.01)


def test_finetune_strength_zero_leaves_colours_alone() -> None:
    style = learn_style([np.full((8, 8, 3), (0, 0, 255), dtype=np.uint8)])
    params = FillParams(prompt="x", seed=1, finetune_strength=0.0)

    assert np.array_equal(inpaint(IMAGE, REPAINT, params, style), inpaint(IMAGE, REPAINT, params))


def test_full_strength_paints_in_palette_colours() -> None:
    blue = np.full((8, 8, 3), (10, 20, 230), dtype=np.uint8)
    params = FillParams(prompt="x", seed=1, finetune_strength=2.0)

    output = inpaint(IMAGE, REPAINT, params, learn_style([blue]))

    deep = inner_mask(FULL_EDIT_INSET_PX)
    assert deep.any()
    assert np.all(output[deep] == (10, 20, 230))


def test_a_large_hole_is_filled_from_its_surroundings() -> None:
    # A hole over STRUCTURE_MAX_HOLE_PX is filled at a reduced scale: the fill still
    # continues the colour around it, and nothing outside it changes.
    red, blue = (200, 30, 30), (20, 40, 210)
    image = np.zeros((400, 400, 3), dtype=np.uint8)
    image[:, :200], image[:, 200:] = red, blue
    hole = np.zeros((400, 400), dtype=bool)
    hole[100:300, 20:180] = True  # 32,000 pixels, all in the red half
    assert hole.sum() > STRUCTURE_MAX_HOLE_PX

    output = inpaint(image, hole, FillParams(prompt="", seed=7))

    assert np.array_equal(output[~hole], image[~hole])
    assert np.allclose(output[hole].mean(axis=0), red, atol=6)


def ring(inset_px: int) -> np.ndarray:
    """The mask box's pixels `inset_px` pixels in from its edge (1: next to kept ones)."""
    return inner_mask(inset_px - 1) & ~inner_mask(inset_px)


def test_the_edit_fades_in_from_the_mask_edge() -> None:
    # On a flat source the structural fill is the source colour: next to the kept pixels
    # the result is that colour, and the prompt's tint and the texture show further in.
    grey = (120, 120, 120)
    flat = np.full_like(IMAGE, grey)

    output = inpaint(flat, REPAINT, PARAMS).astype(int)

    edge, deep = output[ring(1)], output[inner_mask(FULL_EDIT_INSET_PX)]
    assert np.abs(edge - grey).max() <= 2
    assert np.abs(deep - grey).mean() > 15
    assert np.abs(output[ring(4)] - grey).mean() < np.abs(deep - grey).mean()
