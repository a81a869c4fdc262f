"""A finetune's learned "style": its dominant colours, contrast and texture.

"Training" shrinks the images, clusters their pixels into a palette with a small
k-means (deterministic: initial centres are luminance quantiles, not random draws),
and measures luminance contrast and texture. A fill applies the style to the
repainted pixels in proportion to `finetune_strength`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from emulator.images import RGB

PALETTE_SIZE = 6
TRAINING_SIDE_PX = 96
KMEANS_ITERATIONS = 12
# At this finetune_strength (the provider's maximum) pixels take their palette colour.
FULL_STYLE_STRENGTH = 2.0
# The repainted region's contrast may move by at most this factor toward the style's.
MAX_CONTRAST_GAIN = 2.0
# A style's texture scales the fill's seeded texture relative to this reference level.
REFERENCE_TEXTURE = 0.05
MAX_TEXTURE_GAIN = 3.0
_LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)

Pixels = npt.NDArray[np.float32]  # n x 3 RGB, 0..255


@dataclass(frozen=True, eq=False)
class Style:
    """What a finetune learned. `palette` is k x 3 RGB, most frequent colour first."""

    palette: Pixels
    contrast: float  # luminance standard deviation, 0..1
    texture: float  # mean absolute Laplacian of luminance, 0..1

    def as_json(self) -> dict[str, object]:
        return {
            "palette": [
                "#{:02x}{:02x}{:02x}".format(*colour)
                for colour in np.rint(self.palette).astype(int)
            ],
            "contrast": round(self.contrast, 4),
            "texture": round(self.texture, 4),
        }


def learn_style(images: Sequence[RGB]) -> Style:
    """Learn a style from one or more training images."""
    thumbnails = [_thumbnail(image) for image in images]
    greys = [
        cv2.cvtColor(thumb, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255 for thumb in thumbnails
    ]
    return Style(
        palette=_palette(np.concatenate([thumb.reshape(-1, 3) for thumb in thumbnails])),
        contrast=float(np.mean([grey.std() for grey in greys])),
        texture=float(np.mean([np.abs(cv2.Laplacian(grey, cv2.CV_32F)).mean() for grey in greys])),
    )


def apply_style(pixels: Pixels, style: Style, strength: float) -> Pixels:
    """Move `pixels` toward the style's contrast, then toward their nearest palette colours
    (at full strength they become palette colours)."""
    weight = _weight(strength)
    contrasted = _toward_contrast(pixels, style.contrast, weight)
    nearest = style.palette[_nearest(contrasted, style.palette)]
    return contrasted + weight * (nearest - contrasted)


def texture_gain(style: Style, strength: float) -> float:
    """How much to scale a fill's texture: toward the style's texture with `strength`."""
    full_gain = np.clip(style.texture / REFERENCE_TEXTURE, 1 / MAX_TEXTURE_GAIN, MAX_TEXTURE_GAIN)
    return float(1 + _weight(strength) * (full_gain - 1))


def _weight(strength: float) -> np.float32:
    return np.float32(min(1.0, strength / FULL_STYLE_STRENGTH))


def _thumbnail(image: RGB) -> RGB:
    height, width = image.shape[:2]
    scale = min(1.0, TRAINING_SIDE_PX / max(height, width))
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)


def _palette(pixels: npt.NDArray[np.uint8]) -> Pixels:
    points = pixels.astype(np.float32)
    centres = _quantile_centres(points)
    for _ in range(KMEANS_ITERATIONS):
        labels = _nearest(points, centres)
        centres = _cluster_means(points, labels, centres)
    counts = np.bincount(_nearest(points, centres), minlength=len(centres))
    # Fewer distinct colours than PALETTE_SIZE leave duplicate centres that win no pixel.
    order = [index for index in np.argsort(-counts, kind="stable") if counts[index]]
    return centres[order]


def _quantile_centres(points: Pixels) -> Pixels:
    order = np.argsort(points @ _LUMA_WEIGHTS, kind="stable")
    picks = ((np.arange(PALETTE_SIZE) + 0.5) / PALETTE_SIZE * len(points)).astype(int)
    return points[order[picks]].copy()


def _cluster_means(points: Pixels, labels: npt.NDArray[np.intp], centres: Pixels) -> Pixels:
    updated = centres.copy()
    for index in range(len(centres)):
        members = points[labels == index]
        if len(members):  # an empty cluster keeps its centre
            updated[index] = members.mean(axis=0)
    return updated


def _nearest(points: Pixels, centres: Pixels) -> npt.NDArray[np.intp]:
    # |p - c|^2 less |p|^2, which is the same for every centre: one small matrix product
    # instead of an n x k x 3 array of differences.
    distances = (centres * centres).sum(axis=1) - 2 * (points @ centres.T)
    return np.argmin(distances, axis=1)


def _toward_contrast(pixels: Pixels, contrast: float, weight: np.float32) -> Pixels:
    luma = pixels @ _LUMA_WEIGHTS
    current = float(luma.std()) / 255
    if current == 0:
        return pixels
    gain = np.clip(contrast / current, 1 / MAX_CONTRAST_GAIN, MAX_CONTRAST_GAIN)
    scale = np.float32(1 + weight * (gain - 1))
    mean = pixels.mean(axis=0)
    return mean + scale * (pixels - mean)
