"""Drawing product shots: a supersampled canvas with its edit mask, lighting, and shapes.

Product drawings use a 100 x 100 unit coordinate system; a per-sample `Scene` maps units
to canvas pixels with a small seeded shift and scale, so no two samples sit identically.
`Scene.finish` scales image and mask down to the requested size, the mask thresholded so
it stays binary (0 keep, 255 repaint).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from fillpipe.samples.canvas import MASK_THRESHOLD, RGB, SUPERSAMPLE, Box, Point, png

UNITS = 100.0
JITTER_SHIFT_UNITS = (5.0, 3.0)
JITTER_SCALE = (0.94, 1.06)

SHADOW_RGB: RGB = (40, 34, 30)
SPOTLIGHT_GAIN = 0.35
SPOTLIGHT_SPREAD = 0.16
# cylinder shading: brightness = BASE + AMP * cos(pi * (t - PEAK)), t across the object
CYLINDER_BASE = 0.74
CYLINDER_AMP = 0.34
CYLINDER_PEAK = 0.32
HIGHLIGHT_GAIN = 0.45
HIGHLIGHT_AT = 0.22
HIGHLIGHT_WIDTH = 0.06


def shade(colour: RGB, factor: float) -> RGB:
    r, g, b = (min(255, max(0, round(channel * factor))) for channel in colour)
    return (r, g, b)


def mix(a: RGB, b: RGB, t: float) -> RGB:
    r, g, bl = (round(x + (y - x) * t) for x, y in zip(a, b, strict=True))
    return (r, g, bl)


def pick(rng: np.random.Generator, options: Sequence[RGB]) -> RGB:
    return options[int(rng.integers(len(options)))]


def vertical_gradient(size: tuple[int, int], top: RGB, bottom: RGB) -> np.ndarray:
    width, height = size
    t = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    column = np.asarray(top, np.float32) * (1 - t) + np.asarray(bottom, np.float32) * t
    return np.broadcast_to(column, (height, width, 3)).copy()


def spotlight(rgb: np.ndarray, centre: Point) -> np.ndarray:
    """Lighten towards white around `centre` (fractions of the canvas), like a studio lamp."""
    height, width, _ = rgb.shape
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    dist2 = (x / width - centre[0]) ** 2 + (y / height - centre[1]) ** 2
    glow = (SPOTLIGHT_GAIN * np.exp(-dist2 / SPOTLIGHT_SPREAD))[..., None]
    return rgb + glow * (255.0 - rgb)


def to_image(rgb: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")


def cylinder_layer(size: tuple[int, int], colour: RGB, span: tuple[float, float]) -> Image.Image:
    """`colour` shaded like a cylinder lit from the upper left, across pixels `span` in x."""
    width, height = size
    t = np.clip((np.arange(width, dtype=np.float32) - span[0]) / (span[1] - span[0]), 0, 1)
    light = CYLINDER_BASE + CYLINDER_AMP * np.cos(np.pi * (t - CYLINDER_PEAK))
    shine = HIGHLIGHT_GAIN * np.exp(-(((t - HIGHLIGHT_AT) / HIGHLIGHT_WIDTH) ** 2))
    base = np.asarray(colour, np.float32)[None, :]
    row = base * light[:, None] + (255.0 - base) * shine[:, None]
    return to_image(np.broadcast_to(row[None, :, :], (height, width, 3)))


def soft_layer(size: tuple[int, int], colour: RGB, span: tuple[float, float]) -> Image.Image:
    """`colour` lit from above: a gentle top-to-bottom falloff across pixels `span` in y."""
    width, height = size
    t = np.clip((np.arange(height, dtype=np.float32) - span[0]) / (span[1] - span[0]), 0, 1)
    light = 1.12 - 0.3 * t
    column = np.asarray(colour, np.float32)[None, :] * light[:, None]
    return to_image(np.broadcast_to(column[:, None, :], (height, width, 3)))


Shape = Callable[[ImageDraw.ImageDraw, int], None]


@dataclass
class Scene:
    """A supersampled canvas, its edit mask and the unit-to-pixel mapping of one sample."""

    size_px: int
    rng: np.random.Generator
    image: Image.Image = field(init=False)
    mask: Image.Image = field(init=False)
    shift: Point = field(init=False)
    scale: float = field(init=False)

    def __post_init__(self) -> None:
        side = self.size_px * SUPERSAMPLE
        self.image = Image.new("RGB", (side, side))
        self.mask = Image.new("L", (side, side), 0)
        dx, dy = (float(self.rng.uniform(-limit, limit)) for limit in JITTER_SHIFT_UNITS)
        self.shift = (dx, dy)
        self.scale = float(self.rng.uniform(*JITTER_SCALE))

    @property
    def side(self) -> int:
        return self.image.width

    @property
    def unit(self) -> float:
        return self.side / UNITS

    def xy(self, x: float, y: float) -> Point:
        """Canvas pixels of product point (`x`, `y`) in units."""
        half = UNITS / 2
        px = half + (x - half) * self.scale + self.shift[0]
        py = half + (y - half) * self.scale + self.shift[1]
        return (px * self.unit, py * self.unit)

    def box(self, x0: float, y0: float, x1: float, y1: float) -> Box:
        return (*self.xy(x0, y0), *self.xy(x1, y1))

    def points(self, points: Sequence[Point]) -> list[Point]:
        return [self.xy(x, y) for x, y in points]

    def length(self, units: float) -> int:
        return max(1, round(units * self.scale * self.unit))

    def backdrop(self, colours: tuple[RGB, RGB]) -> None:
        rgb = vertical_gradient(self.image.size, *colours)
        self.image = to_image(spotlight(rgb, (0.5, 0.4)))

    def fill(self, shape: Shape, colour: RGB) -> None:
        self.image.paste(colour, (0, 0, self.side, self.side), self.stencil(shape))

    def stencil(self, shape: Shape) -> Image.Image:
        """An L image, 255 inside `shape`."""
        stencil = Image.new("L", self.image.size, 0)
        shape(ImageDraw.Draw(stencil), 255)
        return stencil

    def fill_layer(self, shape: Shape, layer: Image.Image) -> None:
        self.image.paste(layer, (0, 0), self.stencil(shape))

    def cylinder(self, shape: Shape, colour: RGB, x0: float, x1: float) -> None:
        span = (self.xy(x0, 0)[0], self.xy(x1, 0)[0])
        self.fill_layer(shape, cylinder_layer(self.image.size, colour, span))

    def soft(self, shape: Shape, colour: RGB, y0: float, y1: float) -> None:
        span = (self.xy(0, y0)[1], self.xy(0, y1)[1])
        self.fill_layer(shape, soft_layer(self.image.size, colour, span))

    def shadow(self, box: Box, *, blur_units: float, opacity: float) -> None:
        """A blurred elliptical contact shadow inside product box `box`."""
        layer = Image.new("L", self.image.size, 0)
        ImageDraw.Draw(layer).ellipse(self.box(*box), fill=round(255 * opacity))
        layer = layer.filter(ImageFilter.GaussianBlur(self.length(blur_units)))
        self.image.paste(SHADOW_RGB, (0, 0, self.side, self.side), layer)

    def mark(self, shape: Shape) -> None:
        """Add `shape` to the region the edit repaints."""
        shape(ImageDraw.Draw(self.mask), 255)

    def unmark(self, shape: Shape) -> None:
        """Keep `shape`: a part drawn in front of the repainted region."""
        shape(ImageDraw.Draw(self.mask), 0)

    def finish(self) -> tuple[bytes, bytes]:
        size = (self.size_px, self.size_px)
        image = self.image.resize(size, Image.Resampling.LANCZOS)
        mask = self.mask.resize(size, Image.Resampling.BOX)
        binary = mask.point(lambda value: 255 if value >= MASK_THRESHOLD else 0)
        return png(image), png(binary)


def ellipse(scene: Scene, box: Box) -> Shape:
    return lambda draw, fill: draw.ellipse(scene.box(*box), fill=fill)


def rect(scene: Scene, box: Box, radius: float = 0.0) -> Shape:
    def shape(draw: ImageDraw.ImageDraw, fill: int) -> None:
        draw.rounded_rectangle(scene.box(*box), radius=scene.length(radius), fill=fill)

    return shape


def polygon(scene: Scene, points: Sequence[Point]) -> Shape:
    return lambda draw, fill: draw.polygon(scene.points(points), fill=fill)


def union(*shapes: Shape) -> Shape:
    def shape(draw: ImageDraw.ImageDraw, fill: int) -> None:
        for part in shapes:
            part(draw, fill)

    return shape


def line(scene: Scene, points: Sequence[Point], colour: RGB, width: float) -> None:
    ImageDraw.Draw(scene.image).line(
        scene.points(points), fill=colour, width=scene.length(width), joint="curve"
    )
