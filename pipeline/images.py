"""Image checks: does it decode, how large is it, does it carry an alpha mask."""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from pipeline.errors import InputError

MAX_PIXELS = 50_000_000
ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})
# What Pillow raises for bytes that are no image it can read, or one too large to read.
DECODE_ERRORS = (
    UnidentifiedImageError,
    OSError,
    SyntaxError,
    ValueError,
    Image.DecompressionBombError,
    Image.DecompressionBombWarning,
)


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int
    format: str
    has_alpha: bool

    @property
    def megapixels(self) -> float:
        return self.width * self.height / 1_000_000


def inspect(data: bytes, *, what: str = "image", full: bool = True) -> ImageInfo:
    """Decode `data` fully and describe it; `InputError` naming `what` if it cannot.

    With `full=False` only the header is read (format, size, mode): for bytes known to
    have decoded in full before (see `inputs_digest`).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                if image.width * image.height > MAX_PIXELS:
                    raise InputError(
                        f"{what} is {image.width}x{image.height}, over the {MAX_PIXELS} pixel limit"
                    )
                if full:
                    image.load()
                has_alpha = image.mode in ALPHA_MODES or "transparency" in image.info
                return ImageInfo(image.width, image.height, image.format or "", has_alpha)
    except DECODE_ERRORS as error:
        raise InputError(f"{what} does not decode as an image ({type(error).__name__})") from None


def decode(data: bytes, what: str) -> Image.Image:
    """Decode `data` in full; `InputError` naming `what` when it is no image or is over
    the pixel limit."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.width * image.height > MAX_PIXELS:
                raise InputError(
                    f"{what} is {image.width}x{image.height}, over the {MAX_PIXELS} pixel limit"
                )
            image.load()
            return image
    except DECODE_ERRORS as error:
        raise InputError(f"{what} does not decode as an image ({type(error).__name__})") from None


def check_edit_inputs(image: bytes, mask: bytes | None, *, full: bool = True) -> ImageInfo:
    """Check an image and its mask belong together, as the provider requires.

    `full=False` skips decoding the pixels (the headers are still checked): for inputs
    whose `inputs_digest` shows they are the very bytes a full check passed.
    """
    image_info = inspect(image, what="the image", full=full)
    if mask is None:
        if not image_info.has_alpha:
            raise InputError(
                "the image has no alpha channel and no mask was given: "
                "add a mask (white = repaint) or an alpha channel"
            )
        return image_info
    mask_info = inspect(mask, what="the mask", full=full)
    if (mask_info.width, mask_info.height) != (image_info.width, image_info.height):
        raise InputError(
            f"the mask is {mask_info.width}x{mask_info.height} but the image is "
            f"{image_info.width}x{image_info.height}: they must be the same size"
        )
    return image_info


def inputs_digest(image: bytes, mask: bytes | None) -> str:
    """SHA-256 naming an image and mask pair byte for byte (hex)."""
    digest = hashlib.sha256(len(image).to_bytes(8, "big"))
    digest.update(image)
    if mask is None:
        digest.update(b"\x00")
    else:
        digest.update(b"\x01")
        digest.update(mask)
    return digest.hexdigest()


def check_in_full(image: bytes, mask: bytes | None) -> tuple[ImageInfo, str]:
    """`check_edit_inputs` decoding every pixel, and the pair's `inputs_digest`: what a
    job records (`JobSpec.checked_inputs`) so its submit need not decode them again."""
    return check_edit_inputs(image, mask), inputs_digest(image, mask)
