"""The fill itself: classical inpainting, then prompt, seed and finetune style on top.

1. Structure: OpenCV's Telea inpainting continues the surrounding image into the hole.
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
from dataclasses import dataclass

import cv2
import numpy as np

from emulator.images import RGB, Mask
from emulator.style import Pixels, Style, apply_style, texture_gain

INPAINT_RADIUS_PX = 5
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
    region = _structure(rgb, repaint)[repaint].astype(np.float32)
    region = _tinted(region, params.prompt)
    region += _texture(rgb.shape[:2], params, style)[repaint]
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


def _structure(rgb: RGB, repaint: Mask) -> RGB:
    mask = repaint.astype(np.uint8) * 255
    return np.asarray(cv2.inpaint(rgb, mask, INPAINT_RADIUS_PX, cv2.INPAINT_TELEA), dtype=np.uint8)


def _tinted(region: Pixels, prompt: str) -> Pixels:
    if not prompt:
        return region
    tint = np.array(prompt_colour(prompt), dtype=np.float32)
    return region + np.float32(PROMPT_TINT_WEIGHT) * (tint - region)


def _texture(shape: tuple[int, ...], params: FillParams, style: Style | None) -> Pixels:
    """Seeded noise, height x width x 3: the only place the seed enters the image."""
    height, width = shape
    rng = np.random.default_rng(params.seed % SEED_SPACE)
    cells = (width // BLOTCH_CELL_PX + 2, height // BLOTCH_CELL_PX + 2)
    coarse = rng.standard_normal((cells[1], cells[0], 3)).astype(np.float32)
    blotches = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    grain = rng.standard_normal((height, width, 1)).astype(np.float32)
    grain_amplitude = GRAIN_AMPLITUDE * params.steps / MAX_STEPS
    noise = BLOTCH_AMPLITUDE * blotches.reshape(height, width, 3) + grain_amplitude * grain
    if style is not None:
        noise *= np.float32(texture_gain(style, params.finetune_strength))
    return np.asarray(noise, dtype=np.float32)


def _with_guidance(region: Pixels, guidance: float) -> Pixels:
    scale = np.float32(1 + GUIDANCE_CONTRAST_PER_UNIT * (guidance - DEFAULT_GUIDANCE))
    mean = region.mean(axis=0)
    return mean + scale * (region - mean)
