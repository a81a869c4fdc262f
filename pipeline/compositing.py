"""Paste-back: lay the provider's result over the source through the mask.

FLUX.1 Fill re-encodes the whole image through its VAE, so the pixels the mask keeps
come back with a colour shift that varies across the image, lost detail and (as JPEG)
compression noise. `finish` keeps every such pixel the source's own and takes the result
only where the mask repaints, after correcting the result for the provider's local colour
shift so the seam does not show (`pipeline.compositing_paste`). It also measures the
result's drift and the output's seam (`pipeline.compositing_quality`), for QA.

Mask semantics: a mask image, read as mode L (any other mode is converted): 0 (black)
keeps the source's pixel, 255 (white) repaints it, values between blend by value.
Without a mask image, the source's alpha channel is the mask: alpha 255 (opaque) keeps,
0 (transparent) repaints, so the repaint weight is 1 - alpha/255. The output is RGB.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from pipeline.compositing_paste import Image8, paste
from pipeline.compositing_quality import drift, seams
from pipeline.errors import InputError
from pipeline.images import ALPHA_MODES, decode
from pipeline.models import CompositeOptions, OutputFormat

JPEG_QUALITY = 95
# 4:4:4: no chroma subsampling, so the kept pixels' colours and the seam stay sharp.
JPEG_SUBSAMPLING = 0
# zlib level 1: a seventh of level 6's encode time for about a sixth more bytes on a
# textured 1 MP image (bench_composite); the output is written once and read rarely.
PNG_COMPRESS_LEVEL = 1
FIGURE_DECIMALS = 2


@dataclass(frozen=True)
class Quality:
    """QA figures of one output, in 0-255 levels.

    `composited`: the output is the paste-back (False: the provider's image as
    delivered). `resized`: the result was not the source's size and was resampled to it
    (for the paste, and for the figures; in mode "none" the delivered image keeps its
    own size). `drift_mean`, `drift_p99`: mean and 99th percentile of |result - source|
    over the kept pixels (repaint weight 0), the result at the source's size, all
    channels; 0.0 when nothing is kept (`compositing_quality.drift`). `seam`: how much
    more the colour steps across the mask's edge in the output than in the source along
    the same edge (`compositing_quality.seam` of each; 0.0 when no more): the image's own
    texture and edges there are not counted as a seam.
    """

    composited: bool
    resized: bool
    drift_mean: float
    drift_p99: float
    seam: float

    def as_json(self) -> dict[str, object]:
        """The figures as a JSON object, numbers rounded to two decimals."""
        return {
            "composited": self.composited,
            "resized": self.resized,
            "drift_mean": round(self.drift_mean, FIGURE_DECIMALS),
            "drift_p99": round(self.drift_p99, FIGURE_DECIMALS),
            "seam": round(self.seam, FIGURE_DECIMALS),
        }


@dataclass(frozen=True)
class Finished:
    """A job's output: its encoded bytes, their format (Pillow's name) and its figures."""

    data: bytes
    format: str
    quality: Quality


def repaint_mask(source: Image.Image, mask: bytes | None) -> Image8:
    """The repaint weight x 255 as a uint8 array of the source's size: the mask image
    read as L, or 255 - the source's alpha when there is no mask image."""
    if mask is None:
        if source.mode not in ALPHA_MODES and "transparency" not in source.info:
            raise InputError(
                "the source has no alpha channel and no mask was given: "
                "nothing says which pixels to keep"
            )
        alpha = np.asarray(source.convert("RGBA").getchannel("A"))
        inverted: Image8 = np.subtract(np.uint8(255), alpha)
        return inverted
    image = decode(mask, "the mask")
    if image.size != source.size:
        raise InputError(
            f"the mask is {image.width}x{image.height} but the source is "
            f"{source.width}x{source.height}: they must be the same size"
        )
    return np.asarray(image.convert("L"))


def rgb_at(image: Image.Image, size: tuple[int, int]) -> tuple[Image8, bool]:
    """The image as an RGB array of `size` (Lanczos-resampled if it is another size), and
    whether it was resampled."""
    rgb = image.convert("RGB")
    if rgb.size == size:
        return np.asarray(rgb), False
    return np.asarray(rgb.resize(size, Image.Resampling.LANCZOS)), True


def encode(pixels: Image8, output_format: OutputFormat) -> tuple[bytes, str]:
    """The RGB pixels as PNG (lossless, zlib level 1) or JPEG (quality 95, 4:4:4), and
    Pillow's name of the format."""
    buffer = io.BytesIO()
    image = Image.fromarray(pixels, mode="RGB")
    if output_format == "png":
        image.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
        return buffer.getvalue(), "PNG"
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY, subsampling=JPEG_SUBSAMPLING)
    return buffer.getvalue(), "JPEG"


def finish(
    source: bytes,
    mask: bytes | None,
    result: bytes,
    *,
    options: CompositeOptions,
    output_format: OutputFormat,
) -> Finished:
    """The job's output made from the provider's `result`, with its QA figures.

    Mode "paste": the result (resampled to the source's size if it is another size) is
    corrected for the provider's local colour shift (with `color_match`) and laid over
    the source through the mask (`mask`, or the source's alpha when None), blending
    inside the mask's edge over `feather_px`; encoded as `output_format`. A PNG output
    holds every kept pixel exactly as the source has it; a JPEG one within its
    compression's error. Mode "none": `result` byte for byte in its own format, its
    figures measured all the same. `InputError` when an input does not decode or the
    mask is not the source's size.
    """
    source_image = decode(source, "the source")
    weights = repaint_mask(source_image, mask)
    result_image = decode(result, "the result")
    source_pixels, _ = rgb_at(source_image, source_image.size)
    result_pixels, resized = rgb_at(result_image, source_image.size)
    drift_mean, drift_p99 = drift(source_pixels, weights, result_pixels)
    if options.mode == "none":
        seam_score = excess_seam(result_pixels, source_pixels, weights)
        quality = Quality(False, resized, drift_mean, drift_p99, seam_score)
        return Finished(result, result_image.format or "", quality)
    output = paste(
        source_pixels,
        weights,
        result_pixels,
        feather_px=options.feather_px,
        color_match=options.color_match,
    )
    seam_score = excess_seam(output, source_pixels, weights)
    data, encoded_as = encode(output, output_format)
    return Finished(data, encoded_as, Quality(True, resized, drift_mean, drift_p99, seam_score))


def excess_seam(image: Image8, source: Image8, weights: Image8) -> float:
    """The image's seam score beyond the source's own along the same edge (0.0 if none)."""
    own, found = seams((source, image), weights)
    return max(0.0, found - own)
