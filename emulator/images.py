"""Image bytes in and out: base64, decoding, masks, and deterministic encoding.

Arrays are height x width (x 3 RGB channels), `uint8`. A mask array is `True` where
the image is to be repainted.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

RGB = npt.NDArray[np.uint8]
Mask = npt.NDArray[np.bool_]

# Mask pixels at or above this grey level are repainted; alpha below it is repainted.
MASK_THRESHOLD = 128
MEDIA_TYPES = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}
FILE_EXTENSIONS = {"jpeg": "jpg", "png": "png", "webp": "webp"}
JPEG_QUALITY = 92
WEBP_QUALITY = 92
# zlib level 1: half the encode time of 6 for a few more bytes (the provider does not
# say what level it uses).
PNG_COMPRESS_LEVEL = 1
# Fixed encoder options and no metadata (no EXIF, no timestamps): same pixels, same bytes.
_SAVE_OPTIONS: dict[str, dict[str, Any]] = {
    "jpeg": {"format": "JPEG", "quality": JPEG_QUALITY},
    "png": {"format": "PNG", "compress_level": PNG_COMPRESS_LEVEL},
    "webp": {"format": "WEBP", "quality": WEBP_QUALITY, "method": 4},
}
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)


class ImageError(ValueError):
    """Bytes or text that do not hold a usable image."""


def decode_base64(text: str) -> bytes:
    """Strict base64 (no data-URL prefix, no whitespace), as a JSON API expects."""
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:  # binascii.Error, or a non-ASCII character
        raise ImageError("Invalid base64 string") from None


def open_image(data: bytes) -> Image.Image:
    """Decode `data` fully, so that truncated files fail here and not later."""
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except _DECODE_ERRORS:
        raise ImageError("Image could not be decoded") from None
    return image


def rgb_array(image: Image.Image) -> RGB:
    return np.array(image.convert("RGB"), dtype=np.uint8)


def alpha_mask(image: Image.Image) -> Mask | None:
    """The repaint mask an alpha channel carries (transparent = repaint), if any."""
    if not image.has_transparency_data:
        return None
    alpha = np.array(image.convert("RGBA"), dtype=np.uint8)[..., 3]
    return alpha < MASK_THRESHOLD


def mask_array(image: Image.Image) -> Mask:
    """A mask image as a repaint mask: white repaints, black keeps."""
    return np.array(image.convert("L"), dtype=np.uint8) >= MASK_THRESHOLD


def encode(rgb: RGB, output_format: str) -> bytes:
    """`rgb` as `jpeg`, `png` or `webp` bytes; deterministic for a given input."""
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, **_SAVE_OPTIONS[output_format])
    return buffer.getvalue()
