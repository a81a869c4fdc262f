"""Training images for the demo's brand finetune: swatches in one palette (stripes,
blobs, tiles, rings, chevrons), and the zip archive the provider's finetune upload takes."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw

from fillpipe.samples.canvas import RGB, SUPERSAMPLE, check_count_and_size, png

BRAND_PALETTE: tuple[RGB, ...] = (
    (15, 76, 92),  # deep teal
    (227, 100, 20),  # burnt orange
    (251, 176, 59),  # saffron
    (95, 15, 64),  # plum
    (244, 233, 216),  # cream
)


def _stripes(draw: ImageDraw.ImageDraw, side: int, rng: np.random.Generator) -> None:
    band = side // int(rng.integers(5, 9))
    order = rng.permutation(len(BRAND_PALETTE))
    for i, start in enumerate(range(-side, 2 * side, band)):
        colour = BRAND_PALETTE[int(order[i % len(order)])]
        draw.polygon(
            [(start, 0), (start + band, 0), (start + band - side, side), (start - side, side)],
            fill=colour,
        )


def _blobs(draw: ImageDraw.ImageDraw, side: int, rng: np.random.Generator) -> None:
    draw.rectangle((0, 0, side, side), fill=BRAND_PALETTE[-1])
    for _ in range(int(rng.integers(7, 12))):
        x, y = rng.uniform(0, side, 2)
        r = float(rng.uniform(0.08, 0.22)) * side
        colour = BRAND_PALETTE[int(rng.integers(len(BRAND_PALETTE) - 1))]
        draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)


def _tiles(draw: ImageDraw.ImageDraw, side: int, rng: np.random.Generator) -> None:
    cells = int(rng.integers(3, 5))
    cell = side / cells
    for row in range(cells):
        for col in range(cells):
            back, fore = rng.choice(len(BRAND_PALETTE), 2, replace=False)
            x, y = col * cell, row * cell
            draw.rectangle((x, y, x + cell, y + cell), fill=BRAND_PALETTE[int(back)])
            start = 90 * int(rng.integers(4))
            corner = (x - cell, y - cell, x + cell, y + cell)
            if start % 180:
                corner = (x, y, x + 2 * cell, y + 2 * cell)
            draw.pieslice(corner, start, start + 90, fill=BRAND_PALETTE[int(fore)])


def _rings(draw: ImageDraw.ImageDraw, side: int, rng: np.random.Generator) -> None:
    draw.rectangle((0, 0, side, side), fill=BRAND_PALETTE[-1])
    cx, cy = rng.uniform(0.3, 0.7, 2) * side
    for i, radius in enumerate(np.linspace(side * 0.9, side * 0.1, 7)):
        colour = BRAND_PALETTE[i % (len(BRAND_PALETTE) - 1)]
        draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=colour)


def _chevrons(draw: ImageDraw.ImageDraw, side: int, rng: np.random.Generator) -> None:
    band = side // int(rng.integers(5, 8))
    for i, top in enumerate(range(-band, side + band, band)):
        colour = BRAND_PALETTE[i % len(BRAND_PALETTE)]
        draw.polygon(
            [
                (0, top),
                (side / 2, top + band),
                (side, top),
                (side, top + band),
                (side / 2, top + 2 * band),
                (0, top + band),
            ],
            fill=colour,
        )


MOTIFS: tuple[Callable[[ImageDraw.ImageDraw, int, np.random.Generator], None], ...] = (
    _stripes,
    _blobs,
    _tiles,
    _rings,
    _chevrons,
)


def make_finetune_images(count: int = 6, *, size_px: int = 256, seed: int = 0) -> list[bytes]:
    """`count` PNG swatches in one brand style: `BRAND_PALETTE` in stripes, blobs, tiles…"""
    check_count_and_size(count, size_px)
    return [_swatch(index, size_px, seed) for index in range(count)]


def _swatch(index: int, size_px: int, seed: int) -> bytes:
    rng = np.random.default_rng([seed, index, 1])
    side = size_px * SUPERSAMPLE
    image = Image.new("RGB", (side, side), BRAND_PALETTE[-1])
    MOTIFS[index % len(MOTIFS)](ImageDraw.Draw(image), side, rng)
    return png(image.resize((size_px, size_px), Image.Resampling.LANCZOS))


def finetune_zip(images: Sequence[bytes]) -> bytes:
    """A zip of `images` as image_001.png, image_002.png, …, the finetune upload format.

    Entries carry a fixed timestamp, so the same images give the same archive bytes.
    """
    if not images:
        raise ValueError("a finetune needs at least one image")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for number, data in enumerate(images, start=1):
            entry = zipfile.ZipInfo(f"image_{number:03d}.png", date_time=(1980, 1, 1, 0, 0, 0))
            entry.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(entry, data)
    return buffer.getvalue()
