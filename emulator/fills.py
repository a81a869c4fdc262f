"""Fill jobs: reading the submitted image and mask, and rendering the result.

The repaint mask is the `mask` image (white repaints, black keeps; grey levels from
128 up count as white) or, without a mask, the image's alpha channel (transparent,
alpha below 128, repaints). The output is RGB, alpha dropped, re-encoded as the
provider's VAE does when the job's `Rendering` says `drift`, and at the input's size
times its `result_scale`.
Both functions are CPU-bound and run in the image thread pool.
"""

from __future__ import annotations

from dataclasses import dataclass

from PIL import Image

from emulator.errors import InvalidRequest, Issue
from emulator.images import (
    RGB,
    ImageError,
    Mask,
    alpha_mask,
    decode_base64,
    encode,
    mask_array,
    open_image,
    rgb_array,
)
from emulator.inpaint import FillParams, inpaint
from emulator.reencode import reencoded, rescaled
from emulator.rendering import Rendering
from emulator.style import Style
from emulator.tasks import Sample


@dataclass(frozen=True, eq=False)
class FillImages:
    """The submitted image as RGB and where to repaint it."""

    rgb: RGB
    repaint: Mask

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])


@dataclass(frozen=True, eq=False)
class FillJob:
    """Everything a fill needs to render its result."""

    images: FillImages
    params: FillParams
    style: Style | None
    output_format: str
    rendering: Rendering


def read_fill_images(image_b64: str, mask_b64: str | None) -> FillImages:
    """Decode the submitted image and mask; `InvalidRequest` lists what is wrong with them."""
    image, image_issues = _open("image", image_b64)
    mask, mask_issues = _open("mask", mask_b64)
    if image is None or mask_issues:
        raise InvalidRequest(image_issues + mask_issues)
    return FillImages(rgb_array(image), _repaint_mask(image, mask))


def render(job: FillJob) -> Sample:
    """Inpaint, re-encode, resize and encode: the finished task's sample."""
    images = job.images
    filled = inpaint(images.rgb, images.repaint, job.params, job.style)
    if job.rendering.drift:
        filled = reencoded(filled, job.params.seed)
    filled = rescaled(filled, job.rendering.result_scale)
    return Sample(encode(filled, job.output_format), job.output_format)


def _open(name: str, text: str | None) -> tuple[Image.Image | None, list[Issue]]:
    if text is None:
        return None, []
    try:
        return open_image(decode_base64(text)), []
    except ImageError as error:
        return None, [Issue(("body", name), str(error), "value_error")]


def _repaint_mask(image: Image.Image, mask: Image.Image | None) -> Mask:
    if mask is None:
        return _alpha_repaint_mask(image)
    if mask.size != image.size:
        raise InvalidRequest(
            [
                Issue(
                    ("body", "mask"),
                    f"Mask size {_size(mask)} does not match image size {_size(image)}",
                    "value_error",
                )
            ]
        )
    return mask_array(mask)


def _alpha_repaint_mask(image: Image.Image) -> Mask:
    repaint = alpha_mask(image)
    if repaint is None:
        raise InvalidRequest(
            [
                Issue(
                    ("body", "mask"),
                    "Field required when the image has no alpha channel",
                    "missing",
                )
            ]
        )
    return repaint


def _size(image: Image.Image) -> str:
    return f"{image.width}x{image.height}"
