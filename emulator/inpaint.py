"""The fill itself: classical inpainting, then prompt, seed and finetune style on top.

1. Structure: OpenCV's Telea inpainting continues the surrounding image into the hole.
   It runs on the hole's bounding box only, and a hole of more than
   `STRUCTURE_MAX_HOLE_PX` pixels is filled at a reduced scale and enlarged: Telea costs
   about 1.5 us per hole pixel, CPU the emulator takes from the pipeline under test on
   the same machine, and its fill is smooth, so the enlarged fill looks alike under the
   texture.
2. Prompt: a tint whose hue comes from a SHA-256 of the prompt (stable across runs,
   unlike `hash()`).
3. Seed: a seeded texture, smooth blotches plus grain; more `steps` give more grain.
4. Style: the finetune's palette and contrast, in proportion to `finetune_strength`.
5. Guidance: higher guidance, more contrast in the repainted region.
6. Edge fade: as a real model's edit does, the edit (2 to 5) fades in from the mask's
   edge: the repainted pixels next to a kept one are the structural fill alone, and the
   edit's weight rises linearly to full `EDGE_BLEND_PX` further in (distance to the
   nearest kept pixel; the image's border is no edge). On a flat source the result
   therefore meets the kept pixels without a seam.
7. Composite: every pixel outside the mask is copied from the input unchanged (the
   provider's re-encoding of the whole image is `emulator.reencode`, applied after).

Pure functions of their arguments: same input, same parameters, same pixels.
"""

from __future__ import annotations

import colorsys
import hashlib
import math
from dataclasses import dataclass

import cv2
import numpy as np

from emulator.images import RGB, Mask
from emulator.style import Pixels, Style, apply_style, texture_gain

INPAINT_RADIUS_PX = 5
STRUCTURE_MAX_HOLE_PX = 4_000
PROMPT_TINT_WEIGHT = 0.3
PROMPT_TINT_SATURATION = 0.65
PROMPT_TINT_VALUE = 0.85
BLOTCH_CELL_PX = 24
BLOTCH_AMPLITUDE = 18.0
GRAIN_AMPLITUDE = 10.0
MAX_STEPS = 50
DEFAULT_GUIDANCE = 60.0
GUIDANCE_CONTRAST_PER_UNIT = 0.004
SEED_SPACE = 2**64
EDGE_BLEND_PX = 8.0
# The distance from a repainted pixel next to a kept one to that kept pixel.
_EDGE_DISTANCE_PX = 1.0

Box = tuple[slice, slice]


@dataclass(frozen=True)
class FillParams:
    """The provider parameters that shape the repainted pixels."""

    prompt: str
    seed: int
    steps: int = 50
    guidance: float = DEFAULT_GUIDANCE
    finetune_strength: float = 0.0


def inpaint(rgb: RGB, repaint: Mask, params: FillParams, style: Style | None = None) -> RGB:
    """Repaint the `repaint` pixels of `rgb`; all other pixels are returned unchanged."""
    if not repaint.any():
        return rgb.copy()
    structure = _structure(rgb, repaint)
    region = _tinted(structure, params.prompt) + _texture(repaint, params, style)
    if style is not None:
        region = apply_style(region, style, params.finetune_strength)
    region = _with_guidance(region, params.guidance)
    weight = _edit_weights(repaint)
    region = structure + weight * (region - structure)
    result = rgb.copy()
    result[repaint] = np.clip(np.rint(region), 0, 255).astype(np.uint8)
    return result


def prompt_colour(prompt: str) -> tuple[float, float, float]:
    """An RGB colour (0..255) derived from the prompt's SHA-256: its hue is the prompt's."""
    digest = hashlib.sha256(prompt.encode("utf-8")).digest()
    hue = int.from_bytes(digest[:2], "big") / 0x10000
    red, green, blue = colorsys.hsv_to_rgb(hue, PROMPT_TINT_SATURATION, PROMPT_TINT_VALUE)
    return red * 255, green * 255, blue * 255


def _structure(rgb: RGB, repaint: Mask) -> Pixels:
    """Telea's fill of the `repaint` pixels, n x 3, in `rgb[repaint]`'s order."""
    area = _hole_box(repaint, INPAINT_RADIUS_PX + 1)  # with the known pixels Telea reads
    box = np.ascontiguousarray(rgb[area])
    hole = repaint[area]
    mask = hole.astype(np.uint8) * 255
    scale = min(1.0, math.sqrt(STRUCTURE_MAX_HOLE_PX / int(hole.sum())))
    if scale == 1.0:
        filled = cv2.inpaint(box, mask, INPAINT_RADIUS_PX, cv2.INPAINT_TELEA)
    else:
        size = (max(1, round(box.shape[1] * scale)), max(1, round(box.shape[0] * scale)))
        small_box = cv2.resize(box, size, interpolation=cv2.INTER_AREA)
        # A reduced pixel is in the hole if any pixel it covers is.
        small_mask = np.where(cv2.resize(mask, size, interpolation=cv2.INTER_AREA) > 0, 255, 0)
        radius = max(1, round(INPAINT_RADIUS_PX * scale))
        small = cv2.inpaint(small_box, small_mask.astype(np.uint8), radius, cv2.INPAINT_TELEA)
        filled = cv2.resize(small, (box.shape[1], box.shape[0]), interpolation=cv2.INTER_LINEAR)
    return np.asarray(filled, dtype=np.uint8)[hole].astype(np.float32)


def _hole_box(repaint: Mask, margin_px: int) -> Box:
    """The bounding box of the `repaint` pixels, grown by `margin_px` within the image."""
    rows, cols = np.nonzero(repaint.any(axis=1))[0], np.nonzero(repaint.any(axis=0))[0]
    top, bottom = max(0, rows[0] - margin_px), min(repaint.shape[0], rows[-1] + margin_px + 1)
    left, right = max(0, cols[0] - margin_px), min(repaint.shape[1], cols[-1] + margin_px + 1)
    return slice(top, bottom), slice(left, right)


def _edit_weights(repaint: Mask) -> Pixels:
    """Per repainted pixel, n x 1: 0 next to a kept pixel, rising to 1 `EDGE_BLEND_PX`
    further in. The box one pixel round the hole holds every kept pixel nearest to it."""
    area = _hole_box(repaint, 1)
    hole = repaint[area]
    # Outside the image counts as neither edge nor kept: a full mask has no edge at all.
    distance = cv2.distanceTransform(hole.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    ramp = (distance[hole] - _EDGE_DISTANCE_PX) / np.float32(EDGE_BLEND_PX)
    return np.clip(ramp, 0, 1).astype(np.float32).reshape(-1, 1)


def _tinted(region: Pixels, prompt: str) -> Pixels:
    if not prompt:
        return region
    tint = np.array(prompt_colour(prompt), dtype=np.float32)
    return region + np.float32(PROMPT_TINT_WEIGHT) * (tint - region)


def _texture(repaint: Mask, params: FillParams, style: Style | None) -> Pixels:
    """Seeded noise for the `repaint` pixels, n x 3: the only place the seed enters."""
    height, width = repaint.shape
    rng = np.random.default_rng(params.seed % SEED_SPACE)
    cells = (width // BLOTCH_CELL_PX + 2, height // BLOTCH_CELL_PX + 2)
    coarse = rng.standard_normal((cells[1], cells[0], 3)).astype(np.float32)
    blotches = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    grain = rng.standard_normal((int(repaint.sum()), 1), dtype=np.float32)
    grain_amplitude = GRAIN_AMPLITUDE * params.steps / MAX_STEPS
    noise = BLOTCH_AMPLITUDE * blotches.reshape(height, width, 3)[repaint] + grain_amplitude * grain
    if style is not None:
        noise *= np.float32(texture_gain(style, params.finetune_strength))
    return np.asarray(noise, dtype=np.float32)


def _with_guidance(region: Pixels, guidance: float) -> Pixels:
    scale = np.float32(1 + GUIDANCE_CONTRAST_PER_UNIT * (guidance - DEFAULT_GUIDANCE))
    mean = region.mean(axis=0)
    return mean + scale * (region - mean)
