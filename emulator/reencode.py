"""What becomes of a fill's pixels on their way out: the provider's re-encoding, and
the size the result is answered in.

The real FLUX.1 Fill passes the whole image, kept pixels included, through its VAE, so
what comes back differs from the input everywhere, a little: `reencoded` reproduces
that, so that a pipeline pasting the result back over its source is tested against
pixels that drifted.

- Colour drift: per channel, a shift of `DRIFT_MIN_SHIFT`..`DRIFT_MAX_SHIFT` units of
  0..255, of random sign, drawn on a coarse grid of cells about `DRIFT_CELL_PX` wide (at
  least `DRIFT_MIN_CELLS` a side) and interpolated cubically across the image. It changes
  smoothly from one part of the image to another, so no global offset undoes it.
- Loss of detail: a Gaussian blur of `DRIFT_BLUR_SIGMA_PX`.

The grid is drawn from the task's seed on a stream of its own (the texture's draws are
not disturbed); same pixels and seed, same bytes. A few ms at one megapixel.

`rescaled` resizes the result, as a provider that answers in another size does.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from emulator.images import RGB

DRIFT_MIN_SHIFT = 3.0
DRIFT_MAX_SHIFT = 8.0
DRIFT_CELL_PX = 256
DRIFT_MIN_CELLS = 3
DRIFT_BLUR_SIGMA_PX = 0.7
# The smooth field is interpolated cubically at one sample per this many pixels, then
# linearly to full size: a tenth of the cost of a full-size cubic resize, and no
# visible difference in a field this smooth.
DRIFT_FIELD_STEP_PX = 8
# Keeps the drift's draws apart from the texture's, which use the bare seed.
DRIFT_STREAM = 0xD21F7
SEED_SPACE = 2**64


def reencoded(rgb: RGB, seed: int) -> RGB:
    """`rgb` blurred slightly and shifted by a smooth, seeded per-channel colour field."""
    height, width = rgb.shape[:2]
    softened = cv2.GaussianBlur(rgb, (0, 0), DRIFT_BLUR_SIGMA_PX)
    shift = drift_field(width, height, seed)
    return np.asarray(cv2.add(softened, shift, dtype=cv2.CV_8U), dtype=np.uint8)


def drift_field(width: int, height: int, seed: int) -> np.ndarray:
    """The colour shift `reencoded` adds: height x width x 3, float32, units of 0..255."""
    rng = np.random.default_rng((seed % SEED_SPACE, DRIFT_STREAM))
    cells = (_cells(height), _cells(width), 3)
    size = rng.uniform(DRIFT_MIN_SHIFT, DRIFT_MAX_SHIFT, cells)
    sign = rng.choice(np.array([-1.0, 1.0]), cells)
    coarse = (size * sign).astype(np.float32)
    steps = (_steps(width), _steps(height))
    smooth = cv2.resize(coarse, steps, interpolation=cv2.INTER_CUBIC)
    field = cv2.resize(smooth, (width, height), interpolation=cv2.INTER_LINEAR)
    return np.asarray(field, dtype=np.float32).reshape(height, width, 3)


def rescaled(rgb: RGB, scale: float) -> RGB:
    """`rgb` resized by `scale` (rounded, at least 1 px a side): area-averaged when it
    shrinks, cubic when it grows; unchanged at 1."""
    if scale == 1.0:
        return rgb
    height, width = rgb.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    return np.asarray(cv2.resize(rgb, size, interpolation=interpolation), dtype=np.uint8)


def _cells(side_px: int) -> int:
    return max(DRIFT_MIN_CELLS, math.ceil(side_px / DRIFT_CELL_PX))


def _steps(side_px: int) -> int:
    return max(1, math.ceil(side_px / DRIFT_FIELD_STEP_PX))
