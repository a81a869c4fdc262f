"""The array work of the paste-back: where the provider's result replaces the source, and
the colour correction that hides the provider's local colour shift at the mask's edge.

Images are uint8 arrays (height, width, 3). A mask is a uint8 array (height, width)
holding the repaint weight x 255: 0 keeps the source's pixel, 255 takes the (corrected)
result's, values between blend by their weight. Everything is computed in the mask's
bounding box plus a margin; outside that box the output is the source itself.

The colour correction works because FLUX.1 Fill re-encodes the whole image: just outside
the mask, where nothing was asked to change, the result differs from the source only by
the provider's colour shift (plus noise). That shift, measured in a band of kept pixels
along the mask's edge, is spread into a smooth field by normalized convolution on a
coarse grid (cheap, and local: the shift varies across the image) and added to the
result inside the mask, so the generated region meets the source without a step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

Image8 = npt.NDArray[np.uint8]
Floats = npt.NDArray[np.float32]

# The band of kept pixels the colour shift is measured in reaches this far from the edge.
MIN_BAND_PX = 8
BAND_FEATHER_MULTIPLE = 3
# The field's Gaussian sigma is this fraction of the image's longer side (never below
# MIN_FIELD_SIGMA_PX): the provider's shift drifts over about a tenth of the image.
FIELD_SIGMA_FRACTION = 0.03
MIN_FIELD_SIGMA_PX = 4.0
# The field is estimated on a grid of cells of up to MAX_CELL_PX pixels, about
# GRID_CELLS_LONG_SIDE cells along the longer side for small images.
GRID_CELLS_LONG_SIDE = 128
MAX_CELL_PX = 8
# Where the band is far away (its blurred weight well below this), the field tends to
# the band's mean shift instead of dividing by nearly nothing.
FIELD_PRIOR_WEIGHT = 1e-3
# cv2.distanceTransform's 5x5 mask: neighbours at exactly 1 px, diagonals at 1.4 px.
DISTANCE_MASK_SIZE = 5
# Gaussian kernels reach this many sigmas.
KERNEL_SIGMAS = 3


@dataclass(frozen=True)
class Box:
    """A rectangle of an image: rows top..bottom-1, columns left..right-1."""

    top: int
    bottom: int
    left: int
    right: int

    @property
    def rows(self) -> slice:
        return slice(self.top, self.bottom)

    @property
    def columns(self) -> slice:
        return slice(self.left, self.right)


def aligned_span(start: int, stop: int, limit: int, align: int) -> tuple[int, int]:
    """The span start..stop grown to a multiple of `align` long (moved back from `limit`
    if it would pass it), or 0..limit when no such span fits."""
    length = -(-(stop - start) // align) * align
    if length >= limit:
        return 0, limit
    stop = start + length
    if stop > limit:
        return limit - length, limit
    return start, stop


def repaint_box(mask: Image8, margin_px: int, align_px: int = 1) -> Box | None:
    """The bounding box of the pixels with a repaint weight, grown by `margin_px` on each
    side, clipped to the image and grown to multiples of `align_px` where the image
    allows (whole grid cells make the grid's downscaling fast); None when the mask
    repaints nothing."""
    left, top, width, height = cv2.boundingRect(mask)
    if width == 0 or height == 0:
        return None
    rows, columns = mask.shape
    top, bottom = aligned_span(
        max(0, top - margin_px), min(rows, top + height + margin_px), rows, align_px
    )
    left, right = aligned_span(
        max(0, left - margin_px), min(columns, left + width + margin_px), columns, align_px
    )
    return Box(top, bottom, left, right)


def floats(array: npt.ArrayLike) -> Floats:
    """`array` as float32 (itself when it is float32 already): OpenCV's results typed."""
    return np.asarray(array, dtype=np.float32)


def edge_distance(region: npt.NDArray[np.bool_]) -> Floats:
    """For each pixel of `region`, its distance in pixels to the nearest pixel outside it
    (1.0 for a pixel touching one side on); 0.0 outside the region. The image's border is
    no edge: a region reaching it is measured from its other sides only."""
    return floats(cv2.distanceTransform(region.view(np.uint8), cv2.DIST_L2, DISTANCE_MASK_SIZE))


def band_reach_px(feather_px: int) -> int:
    """How far from the mask's edge the kept band that measures the colour shift reaches."""
    return max(MIN_BAND_PX, BAND_FEATHER_MULTIPLE * feather_px)


def repaint_weight(mask: Image8) -> Floats:
    """The mask as float32 weights 0.0..1.0 (255 gives exactly 1.0)."""
    weight: Floats = np.divide(mask, np.float32(255), dtype=np.float32)
    return weight


def blend_alpha(mask: Image8, feather_px: int) -> Floats:
    """How much of the corrected result each output pixel takes: the repaint weight times
    a ramp that rises from 0 at the mask's edge to 1 at `feather_px` inside it (a pixel
    touching a kept one takes 1/feather_px of the ramp). It is exactly 0 wherever the
    repaint weight is 0, so the blend happens only inside the mask's edge, and a soft or
    alpha mask blends by its own values past the ramp."""
    return feathered(repaint_weight(mask), mask, feather_px)


def feathered(weight: Floats, mask: Image8, feather_px: int) -> Floats:
    """`blend_alpha` of `mask` given its `repaint_weight`; `weight` is used up."""
    if feather_px == 0:
        return weight
    ramp = edge_distance(mask > 0)
    np.multiply(ramp, np.float32(1 / feather_px), out=ramp)
    np.minimum(ramp, np.float32(1), out=ramp)
    np.multiply(weight, ramp, out=weight)
    return weight


def grid_cell_px(long_side_px: int) -> int:
    """The size of the grid's cells for an image whose longer side is `long_side_px`."""
    return max(1, min(MAX_CELL_PX, long_side_px // GRID_CELLS_LONG_SIDE))


def field_sigma_px(long_side_px: int) -> float:
    """The colour field's Gaussian sigma for an image whose longer side is `long_side_px`."""
    return max(MIN_FIELD_SIGMA_PX, FIELD_SIGMA_FRACTION * long_side_px)


@dataclass(frozen=True)
class FieldScale:
    """How the colour field is estimated for one image: its grid's cell, its Gaussian's
    sigma and the reach of the band, in pixels."""

    cell_px: int
    sigma_px: float
    reach_px: int

    @classmethod
    def for_image(cls, shape: tuple[int, ...], feather_px: int) -> FieldScale:
        long_side_px = max(shape[0], shape[1])
        return cls(
            grid_cell_px(long_side_px), field_sigma_px(long_side_px), band_reach_px(feather_px)
        )

    @property
    def margin_px(self) -> int:
        """The margin around the mask's box holding every band pixel the field uses."""
        return self.reach_px + 2 * self.cell_px


def shift_band(repaint_low: npt.NDArray[np.bool_], reach_cells: int) -> Floats:
    """Weights of the grid cells holding only kept pixels within `reach_cells` of a cell
    holding a repaint pixel: 1.0 next to such a cell, falling linearly with distance to
    1/reach_cells at the band's far side (the nearer a cell, the better its shift stands
    for the edge's); 0.0 elsewhere."""
    distance = edge_distance(~repaint_low)
    band: Floats = np.float32(1) - (distance - np.float32(1)) / np.float32(reach_cells)
    band[distance == 0] = 0
    np.maximum(band, np.float32(0), out=band)
    return band


def spread_shift(shift_low: Floats, band: Floats, sigma_cells: float) -> Floats:
    """Normalized convolution of the band's shifts: blur(shift x band) / blur(band), with
    a small prior weight towards the band's mean shift where the band is far away."""
    prior = shift_low[band > 0].mean(axis=0).astype(np.float32)
    numerator = floats(
        cv2.GaussianBlur(
            shift_low * band[..., None], (0, 0), sigma_cells, borderType=cv2.BORDER_CONSTANT
        )
    )
    denominator = floats(
        cv2.GaussianBlur(band, (0, 0), sigma_cells, borderType=cv2.BORDER_CONSTANT)
    )
    numerator += np.float32(FIELD_PRIOR_WEIGHT) * prior
    denominator += np.float32(FIELD_PRIOR_WEIGHT)
    return floats(numerator / denominator[..., None])


def colour_field(shift: Floats, weight: Floats, scale: FieldScale) -> Floats | None:
    """The provider's colour shift (source - result) spread from the kept band along the
    mask's edge over the whole crop, at full resolution; None when no kept pixel is near
    enough to measure it. `shift` is source - result and `weight` the repaint weight, both
    of the crop."""
    rows, columns = weight.shape
    cell = scale.cell_px
    low_size = (math.ceil(columns / cell), math.ceil(rows / cell))
    repaint_low = cv2.resize(weight, low_size, interpolation=cv2.INTER_AREA) > 0
    band = shift_band(repaint_low, math.ceil(scale.reach_px / cell))
    if not band.any():
        return None
    shift_low = floats(cv2.resize(shift, low_size, interpolation=cv2.INTER_AREA))
    field_low = spread_shift(shift_low, band, scale.sigma_px / cell)
    return floats(cv2.resize(field_low, (columns, rows), interpolation=cv2.INTER_LINEAR))


def corrected_difference(
    source: Image8, result: Image8, weight: Floats, scale: FieldScale | None
) -> Floats:
    """corrected result - source, float32: with `scale`, the result is corrected by the
    colour field; without (or when the field cannot be measured), it is the result as is."""
    shift = floats(cv2.subtract(source, result, dtype=cv2.CV_32F))
    field = None if scale is None else colour_field(shift, weight, scale)
    if field is None:
        np.negative(shift, out=shift)
        return shift
    return floats(cv2.subtract(field, shift, dst=field))


def paste(
    source: Image8, mask: Image8, result: Image8, *, feather_px: int, color_match: bool
) -> Image8:
    """The source with the result laid over it through the mask: out = source + alpha x
    (corrected - source), alpha from `blend_alpha`, corrected = the result plus the colour
    field when `color_match`. Where alpha is 0 the output is the source's pixel exactly;
    all three arrays are the same size."""
    scale = FieldScale.for_image(source.shape, feather_px)
    box = repaint_box(mask, scale.margin_px, scale.cell_px)
    out = source.copy()
    if box is None:
        return out
    crop_mask = mask[box.rows, box.columns]
    crop_source = source[box.rows, box.columns]
    weight = repaint_weight(crop_mask)
    difference = corrected_difference(
        crop_source, result[box.rows, box.columns], weight, scale if color_match else None
    )
    alpha = feathered(weight, crop_mask, feather_px)
    cv2.multiply(difference, cv2.merge([alpha, alpha, alpha]), dst=difference)
    out[box.rows, box.columns] = cv2.add(difference, crop_source, dtype=cv2.CV_8U)
    return out
