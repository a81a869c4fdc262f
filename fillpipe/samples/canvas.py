"""What every piece of demo material shares: colour and geometry types, the supersampling
factor, PNG encoding and the argument checks of the generators."""

from __future__ import annotations

import io

from PIL import Image

RGB = tuple[int, int, int]
Point = tuple[float, float]
Box = tuple[float, float, float, float]

# Shapes are drawn on a canvas this many times larger and scaled down, which is what
# gives the edges their anti-aliasing.
SUPERSAMPLE = 2
MIN_SIZE_PX = 64
# Masks are scaled down like images, then thresholded here so they stay binary.
MASK_THRESHOLD = 128


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def check_count_and_size(count: int, size_px: int) -> None:
    if count < 0:
        raise ValueError(f"count must not be negative, got {count}")
    if size_px < MIN_SIZE_PX:
        raise ValueError(f"size_px must be at least {MIN_SIZE_PX}, got {size_px}")
