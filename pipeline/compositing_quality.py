"""The QA figures of a paste-back: how far the provider's result drifted from the source
where nothing was to change, and how visible the output's seam is.

Arrays are as in `pipeline.compositing_paste`: uint8 images (height, width, 3) of the
same size and a uint8 mask (height, width) holding the repaint weight x 255.
"""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.compositing_paste import Floats, Image8, edge_distance, repaint_box

DRIFT_PERCENTILE = 0.99
LEVELS = 256
# The seam's local means: Gaussian sigma, and the width of the bands either side of the
# edge they average (narrow: deeper inside, the edit itself begins to count).
SEAM_SIGMA_PX = 3.0
SEAM_BAND_PX = 3
KERNEL_SIGMAS = 3
# A boundary pixel touches a kept pixel on one of its four sides.
BOUNDARY_DISTANCE_PX = 1.0
# Below this blurred band weight a local mean is undefined and the pixel is skipped.
MIN_BAND_WEIGHT = 1e-6


def drift(source: Image8, mask: Image8, result: Image8) -> tuple[float, float]:
    """(mean, 99th percentile) of |result - source| over the kept pixels (mask 0), every
    channel counted, in 0-255 levels; (0.0, 0.0) when nothing is kept. The percentile is
    the smallest whole level d such that at least 99% of the kept values differ by d or
    less (the differences are whole levels, so it is exact, read off a histogram)."""
    kept = (mask == 0).view(np.uint8)
    difference = cv2.absdiff(source, result)
    counts = np.zeros(LEVELS, np.float64)
    for channel in range(3):
        counts += cv2.calcHist([difference], [channel], kept, [LEVELS], [0, LEVELS]).ravel()
    total = float(counts.sum())
    if total == 0:
        return 0.0, 0.0
    mean = float(np.dot(counts, np.arange(LEVELS))) / total
    percentile = int(np.searchsorted(np.cumsum(counts), DRIFT_PERCENTILE * total))
    return mean, float(percentile)


def local_means(
    images: tuple[Image8, ...], band: np.ndarray, at: np.ndarray
) -> tuple[list[Floats], Floats]:
    """At the pixels `at` selects: for each image, the Gaussian-weighted mean colour of the
    band's pixels around each (normalized convolution, sigma SEAM_SIGMA_PX), one row per
    pixel; and the blurred band weight behind them (shared by the images)."""
    weight = band.astype(np.float32)
    denominator = cv2.GaussianBlur(weight, (0, 0), SEAM_SIGMA_PX, borderType=cv2.BORDER_CONSTANT)
    weights: Floats = denominator[at]
    spread = cv2.merge([weight, weight, weight])
    means = []
    for image in images:
        weighted = cv2.multiply(image, spread, dtype=cv2.CV_32F)
        numerator = cv2.GaussianBlur(
            weighted, (0, 0), SEAM_SIGMA_PX, borderType=cv2.BORDER_CONSTANT
        )
        means.append(numerator[at] / np.maximum(weights, MIN_BAND_WEIGHT)[:, None])
    return means, weights


def seams(images: tuple[Image8, ...], mask: Image8) -> list[float]:
    """How much the colour jumps across the mask's edge in each image, in 0-255 levels.

    The edge's pixels are the repaint pixels (mask > 0) with a kept pixel (mask 0) on one
    of their four sides. At each, two local means of an image are taken by normalized
    convolution with a Gaussian of sigma SEAM_SIGMA_PX: one over the inside band (repaint
    pixels at most SEAM_BAND_PX from the edge), one over the outside band (kept pixels
    at most SEAM_BAND_PX from the edge). An image's score is the mean, over the edge's
    pixels and the three channels, of |inside mean - outside mean|: about 0 for a
    seamless paste (the image's texture averages out in the means), the size of the
    colour step where the paste shows. 0.0 when the mask has no edge (it keeps
    everything or repaints everything). The images share the mask's bands, worked out
    once.
    """
    margin_px = SEAM_BAND_PX + int(KERNEL_SIGMAS * SEAM_SIGMA_PX) + 1
    box = repaint_box(mask, margin_px)
    if box is None:
        return [0.0] * len(images)
    inside = mask[box.rows, box.columns] > 0
    inside_distance = edge_distance(inside)
    edge = inside & (inside_distance <= BOUNDARY_DISTANCE_PX)
    outside = ~inside
    outside_band = outside & (edge_distance(outside) <= SEAM_BAND_PX)
    crops = tuple(image[box.rows, box.columns] for image in images)
    inside_means, _ = local_means(crops, inside & (inside_distance <= SEAM_BAND_PX), edge)
    outside_means, outside_weight = local_means(crops, outside_band, edge)
    measured = outside_weight > MIN_BAND_WEIGHT
    if not edge.any() or not measured.any():
        return [0.0] * len(images)
    return [
        float(np.abs(inner[measured] - outer[measured]).mean())
        for inner, outer in zip(inside_means, outside_means, strict=True)
    ]


def seam(image: Image8, mask: Image8) -> float:
    """The seam score of one image (`seams`)."""
    return seams((image,), mask)[0]
