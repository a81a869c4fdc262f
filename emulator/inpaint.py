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
6. Composite: every pixel outside the mask is copied from the input unchanged.

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
    region = _structure(rgb, repaint)
    region = _tinted(region, params.prompt)
    region += _texture(repaint, params, style)
    if style is not None:
        region = apply_style(region, style, params.finetune_strength)
    region = _with_guidance(region, params.guidance)
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
    rows, cols = np.nonzero(repaint.any(axis=1))[0], np.nonzero(repaint.any(axis=0))[0]
    margin = INPAINT_RADIUS_PX + 1  # the known pixels Telea reads around the hole
    top, bottom = max(0, rows[0] - margin), min(repaint.shape[0], rows[-1] + margin + 1)
    left, right = max(0, cols[0] - margin), min(repaint.shape[1], cols[-1] + margin + 1)
    box = np.ascontiguousarray(rgb[top:bottom, left:right])
    hole = repaint[top:bottom, left:right]
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
