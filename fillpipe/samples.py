"""Demo material: product shots with edit masks, brand swatches, and the contact sheet.

Everything here is drawn with Pillow and numpy, deterministically from a seed, so the
`fillpipe demo` needs no downloaded data. Shapes are drawn on a canvas `SUPERSAMPLE` times
larger and scaled down, which is what gives the edges their anti-aliasing; masks are
scaled down the same way and then thresholded, so they stay binary (0 keep, 255 repaint).

Product drawings use a 100 x 100 unit coordinate system; a per-sample `_Scene` maps units
to canvas pixels with a small seeded shift and scale, so no two samples sit identically.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont, ImageOps, UnidentifiedImageError

RGB = tuple[int, int, int]
Point = tuple[float, float]
Box = tuple[float, float, float, float]
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont

SUPERSAMPLE = 2
UNITS = 100.0
MIN_SIZE_PX = 64
MASK_THRESHOLD = 128
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
CANVAS_NOISE_STD = 7.0

PRODUCT_COLOURS: tuple[RGB, ...] = (
    (196, 98, 64),  # terracotta
    (120, 150, 118),  # sage
    (38, 58, 102),  # navy
    (214, 160, 44),  # mustard
    (28, 118, 126),  # teal
    (222, 140, 150),  # blush
    (62, 62, 70),  # charcoal
    (52, 92, 196),  # cobalt
    (48, 96, 64),  # forest
    (236, 100, 84),  # coral
    (150, 124, 196),  # lilac
)
BACKDROPS: tuple[tuple[RGB, RGB], ...] = (
    ((236, 232, 226), (196, 188, 178)),  # warm grey
    ((226, 232, 238), (178, 188, 200)),  # cool grey
    ((244, 226, 212), (212, 180, 160)),  # peach
    ((224, 238, 230), (176, 200, 186)),  # mint
    ((240, 236, 220), (206, 196, 166)),  # sand
)
GLASS_COLOURS: tuple[RGB, ...] = ((150, 84, 30), (36, 98, 62), (40, 70, 150), (150, 172, 170))
WOOD_RGB: RGB = (150, 104, 68)
CANVAS_RGB: RGB = (232, 220, 196)
TOTE_DYE = (0.0, 0.45)
OFF_WHITE: RGB = (244, 242, 236)
LABEL_PAPER: RGB = (246, 238, 220)
INK: RGB = (40, 36, 34)

BRAND_PALETTE: tuple[RGB, ...] = (
    (15, 76, 92),  # deep teal
    (227, 100, 20),  # burnt orange
    (251, 176, 59),  # saffron
    (95, 15, 64),  # plum
    (244, 233, 216),  # cream
)

SHEET_PAD_PX = 16
SHEET_LABEL_COL_PX = 200
SHEET_HEADER_PX = 40
SHEET_TITLE_FONT_PX = 20
SHEET_LABEL_FONT_PX = 16
SHEET_NOTE_FONT_PX = 13
SHEET_COLUMNS = ("before", "mask", "after")
SHEET_BACKGROUND: RGB = (255, 255, 255)
SHEET_RULE: RGB = (224, 224, 224)
SHEET_TEXT: RGB = (30, 30, 30)
SHEET_MUTED: RGB = (110, 110, 110)
FAILED_TILE: RGB = (200, 200, 200)
FAILED_TEXT: RGB = (150, 20, 20)
MASK_TINT: RGB = (255, 0, 0)
MASK_TINT_ALPHA = 0.55
NOTE_MAX_LINES = 6


@dataclass(frozen=True)
class Sample:
    """One demo edit: an RGB PNG, its binary L mask (255 = repaint) and the prompt."""

    name: str
    image_png: bytes
    mask_png: bytes
    prompt: str


@dataclass(frozen=True)
class SheetRow:
    """One contact-sheet row; `after` is None when the job failed."""

    label: str
    before_png: bytes
    mask_png: bytes
    after: bytes | None
    note: str = ""


# --------------------------------------------------------------------------- drawing


def _shade(colour: RGB, factor: float) -> RGB:
    r, g, b = (min(255, max(0, round(channel * factor))) for channel in colour)
    return (r, g, b)


def _mix(a: RGB, b: RGB, t: float) -> RGB:
    r, g, bl = (round(x + (y - x) * t) for x, y in zip(a, b, strict=True))
    return (r, g, bl)


def _pick(rng: np.random.Generator, options: Sequence[RGB]) -> RGB:
    return options[int(rng.integers(len(options)))]


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _vertical_gradient(size: tuple[int, int], top: RGB, bottom: RGB) -> np.ndarray:
    width, height = size
    t = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    column = np.asarray(top, np.float32) * (1 - t) + np.asarray(bottom, np.float32) * t
    return np.broadcast_to(column, (height, width, 3)).copy()


def _spotlight(rgb: np.ndarray, centre: Point) -> np.ndarray:
    """Lighten towards white around `centre` (fractions of the canvas), like a studio lamp."""
    height, width, _ = rgb.shape
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    dist2 = (x / width - centre[0]) ** 2 + (y / height - centre[1]) ** 2
    glow = (SPOTLIGHT_GAIN * np.exp(-dist2 / SPOTLIGHT_SPREAD))[..., None]
    return rgb + glow * (255.0 - rgb)


def _to_image(rgb: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")


def _cylinder_layer(size: tuple[int, int], colour: RGB, span: tuple[float, float]) -> Image.Image:
    """`colour` shaded like a cylinder lit from the upper left, across pixels `span` in x."""
    width, height = size
    t = np.clip((np.arange(width, dtype=np.float32) - span[0]) / (span[1] - span[0]), 0, 1)
    light = CYLINDER_BASE + CYLINDER_AMP * np.cos(np.pi * (t - CYLINDER_PEAK))
    shine = HIGHLIGHT_GAIN * np.exp(-(((t - HIGHLIGHT_AT) / HIGHLIGHT_WIDTH) ** 2))
    base = np.asarray(colour, np.float32)[None, :]
    row = base * light[:, None] + (255.0 - base) * shine[:, None]
    return _to_image(np.broadcast_to(row[None, :, :], (height, width, 3)))


def _soft_layer(size: tuple[int, int], colour: RGB, span: tuple[float, float]) -> Image.Image:
    """`colour` lit from above: a gentle top-to-bottom falloff across pixels `span` in y."""
    width, height = size
    t = np.clip((np.arange(height, dtype=np.float32) - span[0]) / (span[1] - span[0]), 0, 1)
    light = 1.12 - 0.3 * t
    column = np.asarray(colour, np.float32)[None, :] * light[:, None]
    return _to_image(np.broadcast_to(column[:, None, :], (height, width, 3)))


Shape = Callable[[ImageDraw.ImageDraw, int], None]


@dataclass
class _Scene:
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
        rgb = _vertical_gradient(self.image.size, *colours)
        self.image = _to_image(_spotlight(rgb, (0.5, 0.4)))

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
        self.fill_layer(shape, _cylinder_layer(self.image.size, colour, span))

    def soft(self, shape: Shape, colour: RGB, y0: float, y1: float) -> None:
        span = (self.xy(0, y0)[1], self.xy(0, y1)[1])
        self.fill_layer(shape, _soft_layer(self.image.size, colour, span))

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
        return _png(image), _png(binary)


def _ellipse(scene: _Scene, box: Box) -> Shape:
    return lambda draw, fill: draw.ellipse(scene.box(*box), fill=fill)


def _rect(scene: _Scene, box: Box, radius: float = 0.0) -> Shape:
    def shape(draw: ImageDraw.ImageDraw, fill: int) -> None:
        draw.rounded_rectangle(scene.box(*box), radius=scene.length(radius), fill=fill)

    return shape


def _polygon(scene: _Scene, points: Sequence[Point]) -> Shape:
    return lambda draw, fill: draw.polygon(scene.points(points), fill=fill)


def _union(*shapes: Shape) -> Shape:
    def shape(draw: ImageDraw.ImageDraw, fill: int) -> None:
        for part in shapes:
            part(draw, fill)

    return shape


def _line(scene: _Scene, points: Sequence[Point], colour: RGB, width: float) -> None:
    ImageDraw.Draw(scene.image).line(
        scene.points(points), fill=colour, width=scene.length(width), joint="curve"
    )


# --------------------------------------------------------------------------- products


def _draw_table(scene: _Scene, horizon: float) -> None:
    """A wooden tabletop from `horizon` (canvas units) down, with faint grain."""
    top = round(horizon * scene.unit)
    height = scene.side - top
    y, x = np.mgrid[0:height, 0 : scene.side].astype(np.float32)
    warp = 1.5 * np.sin(x / (13.0 * scene.unit)) + 0.5 * np.sin(x / (4.0 * scene.unit))
    grain = np.sin(y / (0.45 * scene.unit) + warp)
    light = 1.0 - 0.15 * (y / height) + 0.035 * grain
    wood = np.asarray(WOOD_RGB, np.float32)[None, None, :] * light[..., None]
    scene.image.paste(_to_image(wood), (0, top))
    edge = (0, top, scene.side, top + scene.length(0.6))
    ImageDraw.Draw(scene.image).rectangle(edge, fill=_shade(WOOD_RGB, 1.25))


def _draw_mug(scene: _Scene) -> None:
    colour = _pick(scene.rng, PRODUCT_COLOURS)
    scene.backdrop(BACKDROPS[int(scene.rng.integers(len(BACKDROPS)))])
    _draw_table(scene, horizon=64.0)
    scene.shadow((30, 74, 78, 84), blur_units=2.0, opacity=0.55)
    handle = (56, 42, 75, 68)
    ImageDraw.Draw(scene.image).ellipse(
        scene.box(*handle), outline=_shade(colour, 0.8), width=scene.length(4.2)
    )
    body = _union(_rect(scene, (34, 34, 62, 76)), _ellipse(scene, (34, 72, 62, 80)))
    scene.cylinder(body, colour, 34, 62)
    scene.mark(_union(_rect(scene, (34, 38, 62, 76)), _ellipse(scene, (34, 72, 62, 80))))
    scene.fill(_ellipse(scene, (34, 30, 62, 38)), _shade(colour, 1.25))
    scene.fill(_ellipse(scene, (35.5, 31, 60.5, 37)), _shade(colour, 0.55))
    scene.fill(_ellipse(scene, (37, 32.4, 59, 37)), (70, 42, 26))


def _draw_sneaker(scene: _Scene) -> None:
    colour = _pick(scene.rng, PRODUCT_COLOURS)
    accent = _pick(scene.rng, PRODUCT_COLOURS)
    scene.backdrop(BACKDROPS[int(scene.rng.integers(len(BACKDROPS)))])
    scene.shadow((12, 68, 92, 80), blur_units=2.2, opacity=0.5)
    upper = _polygon(scene, SNEAKER_UPPER)
    scene.soft(upper, colour, 32, 67)
    scene.mark(upper)
    scene.fill(_polygon(scene, SNEAKER_HEEL), _shade(accent, 0.95))
    scene.fill(_polygon(scene, SNEAKER_TOE), _shade(colour, 1.15))
    scene.fill(_polygon(scene, SNEAKER_STRIPE), _shade(accent, 1.05))
    scene.fill(_polygon(scene, SNEAKER_COLLAR), (34, 30, 30))
    for step in range(4):
        x, y = 49.5 + step * 3.6, 38.5 + step * 2.6
        _line(scene, [(x - 2.5, y + 2.2), (x + 2.8, y - 1.2)], OFF_WHITE, 1.0)
    sole = _rect(scene, (14, 63, 90, 72), radius=4.0)
    scene.fill(sole, OFF_WHITE)
    scene.unmark(sole)
    scene.fill(_rect(scene, (14.5, 69.5, 89.5, 72.5), radius=2.5), (120, 96, 72))
    _line(scene, [(16, 66), (88, 66)], (214, 208, 198), 0.5)


SNEAKER_UPPER: tuple[Point, ...] = (
    (18, 66), (16, 56), (17, 47), (20, 41), (25, 39.5), (31, 40), (37, 43), (43, 43),
    (47, 37), (50, 33), (54, 32), (57, 34), (60, 40), (66, 46), (74, 50), (81, 53),
    (85, 56), (87, 60), (87.5, 64), (86, 67),
)  # fmt: skip
SNEAKER_HEEL: tuple[Point, ...] = (
    (18, 66), (16, 56), (17, 47), (20, 41), (24, 40), (26.5, 52), (27.5, 66),
)  # fmt: skip
SNEAKER_TOE: tuple[Point, ...] = (
    (74, 50), (81, 53), (85, 56), (87, 60), (87.5, 64), (86, 67), (73, 67), (71, 58),
)  # fmt: skip
SNEAKER_STRIPE: tuple[Point, ...] = ((31, 61), (50, 47.5), (63, 49), (47, 61))
SNEAKER_COLLAR: tuple[Point, ...] = (
    (21, 41.5), (26, 40.3), (32, 41), (38, 44), (44, 44), (40, 46.3), (32, 45), (24, 44),
)  # fmt: skip


def _draw_bottle(scene: _Scene) -> None:
    glass = _pick(scene.rng, GLASS_COLOURS)
    ink = _pick(scene.rng, PRODUCT_COLOURS)
    scene.backdrop(BACKDROPS[int(scene.rng.integers(len(BACKDROPS)))])
    scene.shadow((32, 82, 72, 90), blur_units=2.0, opacity=0.55)
    body = _union(
        _rect(scene, (36, 40, 64, 87), radius=3.0),
        _ellipse(scene, (36, 28, 64, 52)),
        _rect(scene, (45.5, 12, 54.5, 34), radius=1.0),
    )
    scene.cylinder(body, glass, 36, 64)
    scene.cylinder(_rect(scene, (44.5, 8, 55.5, 16), radius=1.2), (196, 160, 70), 44.5, 55.5)
    label = _rect(scene, (36, 48, 64, 76))
    scene.cylinder(label, LABEL_PAPER, 36, 64)
    scene.mark(label)
    scene.fill(_rect(scene, (36, 50, 64, 53)), ink)
    scene.fill(_rect(scene, (36, 71, 64, 74)), ink)
    scene.fill(_ellipse(scene, (45, 56, 55, 64)), _shade(ink, 1.15))
    for y in (66.0, 68.5):
        _line(scene, [(42, y), (58, y)], INK, 0.8)


def _draw_tshirt(scene: _Scene) -> None:
    colour = _pick(scene.rng, PRODUCT_COLOURS)
    scene.backdrop(BACKDROPS[int(scene.rng.integers(len(BACKDROPS)))])
    scene.shadow((22, 80, 80, 92), blur_units=3.0, opacity=0.35)
    scene.soft(_polygon(scene, TSHIRT_OUTLINE), colour, 17, 86)
    scene.fill(_polygon(scene, [(38, 17), *TSHIRT_NECKLINE, (62, 17)]), _shade(colour, 0.55))
    scene.fill(_polygon(scene, TSHIRT_BACK_COLLAR), _shade(colour, 0.9))
    _line(scene, [(38, 17), *TSHIRT_NECKLINE, (62, 17)], _shade(colour, 0.82), 1.4)
    for points in ([(71, 40), (68, 56)], [(29, 40), (32, 56)], [(44, 84), (47, 72)]):
        _line(scene, points, _shade(colour, 0.88), 0.6)
    scene.mark(_rect(scene, (37, 31, 63, 63)))


TSHIRT_NECKLINE: tuple[Point, ...] = (
    (40.5, 21), (44, 23.8), (50, 25), (56, 23.8), (59.5, 21),
)  # fmt: skip
TSHIRT_OUTLINE: tuple[Point, ...] = (
    (38, 17), *TSHIRT_NECKLINE, (62, 17), (79, 24), (89, 42), (77, 48), (71, 40),
    (71, 86), (29, 86), (29, 40), (23, 48), (11, 42), (21, 24),
)  # fmt: skip
TSHIRT_BACK_COLLAR: tuple[Point, ...] = (
    (38, 17), (62, 17), (59.5, 18.6), (50, 19.8), (40.5, 18.6),
)  # fmt: skip


def _draw_tote(scene: _Scene) -> None:
    dye = float(scene.rng.uniform(*TOTE_DYE))
    canvas = _mix(CANVAS_RGB, _pick(scene.rng, PRODUCT_COLOURS), dye)
    scene.backdrop(BACKDROPS[int(scene.rng.integers(len(BACKDROPS)))])
    scene.shadow((22, 82, 82, 92), blur_units=2.5, opacity=0.45)
    for left in (32.0, 52.0):
        ImageDraw.Draw(scene.image).arc(
            scene.box(left, 14, left + 16, 58),
            180,
            360,
            fill=_shade(canvas, 0.8),
            width=scene.length(2.6),
        )
    bag = _polygon(scene, [(26, 38), (74, 38), (78, 88), (22, 88)])
    noise = scene.rng.normal(0.0, CANVAS_NOISE_STD, (scene.side, scene.side, 1))
    span = (scene.xy(0, 38)[1], scene.xy(0, 88)[1])
    layer = np.asarray(_soft_layer(scene.image.size, canvas, span), np.float32)
    scene.fill_layer(bag, _to_image(layer + noise))
    _line(scene, [(26.5, 41.5), (73.5, 41.5)], _shade(canvas, 0.75), 0.35)
    _line(scene, [(28, 86), (72, 86)], _shade(canvas, 0.8), 0.35)
    scene.mark(_rect(scene, (34, 50, 66, 80)))


def _draw_phone(scene: _Scene) -> None:
    frame = _pick(scene.rng, PRODUCT_COLOURS)
    wallpaper = (_pick(scene.rng, PRODUCT_COLOURS), _pick(scene.rng, PRODUCT_COLOURS))
    scene.backdrop(BACKDROPS[int(scene.rng.integers(len(BACKDROPS)))])
    scene.shadow((36, 14, 72, 92), blur_units=3.0, opacity=0.45)
    scene.cylinder(_rect(scene, (33, 10, 67, 88), radius=5.5), _shade(frame, 0.7), 33, 67)
    scene.fill(_rect(scene, (34.5, 11.5, 65.5, 86.5), radius=4.5), (16, 16, 20))
    screen_box = (36.0, 13.0, 64.0, 85.0)
    screen = _rect(scene, screen_box, radius=3.5)
    x0, y0, x1, y1 = (round(v) for v in scene.box(*screen_box))
    paper = _spotlight(_vertical_gradient((x1 - x0, y1 - y0), *wallpaper), (0.3, 0.25))
    layer = Image.new("RGB", scene.image.size)
    layer.paste(_to_image(paper), (x0, y0))
    scene.fill_layer(screen, layer)
    scene.mark(screen)
    scene.fill(_rect(scene, (45, 15, 55, 18), radius=1.5), (8, 8, 10))
    scene.fill(_rect(scene, (42, 24, 58, 30), radius=1.0), OFF_WHITE)
    scene.fill(_rect(scene, (45, 32, 55, 33.5), radius=0.7), OFF_WHITE)
    scene.fill(_rect(scene, (44, 81, 56, 82), radius=0.5), OFF_WHITE)


@dataclass(frozen=True)
class _Kind:
    name: str
    draw: Callable[[_Scene], None]
    prompts: tuple[str, ...]


KINDS: tuple[_Kind, ...] = (
    _Kind(
        "mug",
        _draw_mug,
        (
            "a matte terracotta glaze with the brand's palette",
            "a speckled stoneware glaze in the brand colours",
            "a wraparound pattern of the brand's geometric motifs",
        ),
    ),
    _Kind(
        "sneaker",
        _draw_sneaker,
        (
            "a suede upper in the brand's palette",
            "a knit upper with the brand's stripe pattern",
            "a colour-blocked leather upper in the brand colours",
        ),
    ),
    _Kind(
        "bottle",
        _draw_bottle,
        (
            "a new label with botanical line art in the brand's palette",
            "a minimalist label with the brand's geometric motif",
            "a vintage letterpress label in the brand colours",
        ),
    ),
    _Kind(
        "tshirt",
        _draw_tshirt,
        (
            "a bold geometric chest print in the brand's palette",
            "a screen-printed sunset graphic in the brand colours",
            "a small embroidered badge in the brand's style",
        ),
    ),
    _Kind(
        "tote",
        _draw_tote,
        (
            "a screen-printed pattern of the brand's motifs",
            "a large illustrated logo in the brand colours",
            "a striped panel in the brand's palette",
        ),
    ),
    _Kind(
        "phone",
        _draw_phone,
        (
            "a colourful lock screen wallpaper in the brand's style",
            "a lock screen with an abstract gradient in the brand colours",
            "an app home screen themed in the brand's palette",
        ),
    ),
)


def make_samples(count: int, *, size_px: int = 512, seed: int = 0) -> list[Sample]:
    """`count` product shots with masks and prompts, cycling through `KINDS`.

    Deterministic for (`count`, `size_px`, `seed`); sample `i` does not depend on `count`.
    """
    _check_count_and_size(count, size_px)
    return [_make_sample(index, size_px, seed) for index in range(count)]


def _make_sample(index: int, size_px: int, seed: int) -> Sample:
    kind = KINDS[index % len(KINDS)]
    rng = np.random.default_rng([seed, index])
    scene = _Scene(size_px, rng)
    kind.draw(scene)
    image_png, mask_png = scene.finish()
    prompt = kind.prompts[int(rng.integers(len(kind.prompts)))]
    return Sample(f"{kind.name}-{index + 1:02d}", image_png, mask_png, prompt)


def _check_count_and_size(count: int, size_px: int) -> None:
    if count < 0:
        raise ValueError(f"count must not be negative, got {count}")
    if size_px < MIN_SIZE_PX:
        raise ValueError(f"size_px must be at least {MIN_SIZE_PX}, got {size_px}")


# --------------------------------------------------------------------------- brand swatches


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
    _check_count_and_size(count, size_px)
    return [_swatch(index, size_px, seed) for index in range(count)]


def _swatch(index: int, size_px: int, seed: int) -> bytes:
    rng = np.random.default_rng([seed, index, 1])
    side = size_px * SUPERSAMPLE
    image = Image.new("RGB", (side, side), BRAND_PALETTE[-1])
    MOTIFS[index % len(MOTIFS)](ImageDraw.Draw(image), side, rng)
    return _png(image.resize((size_px, size_px), Image.Resampling.LANCZOS))


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


# --------------------------------------------------------------------------- contact sheet


def _font(size_px: int) -> Font:
    return ImageFont.load_default(size=size_px)


def _open_rgb(data: bytes) -> Image.Image:
    """Decode image bytes to RGB, compositing any transparency onto white."""
    with Image.open(io.BytesIO(data)) as opened:
        image = ImageOps.exif_transpose(opened)
        if image.mode in ("RGBA", "LA", "PA", "P"):
            image = image.convert("RGBA")
            flat = Image.new("RGB", image.size, SHEET_BACKGROUND)
            flat.paste(image, mask=image.getchannel("A"))
            return flat
        return image.convert("RGB")


def _thumb(image: Image.Image, thumb_px: int) -> Image.Image:
    return ImageOps.contain(image, (thumb_px, thumb_px), Image.Resampling.LANCZOS)


def _overlay(before: Image.Image, mask_png: bytes) -> Image.Image:
    """`before` tinted red where the mask is white."""
    with Image.open(io.BytesIO(mask_png)) as opened:
        mask = opened.convert("L").resize(before.size, Image.Resampling.NEAREST)
    tinted = Image.blend(before, Image.new("RGB", before.size, MASK_TINT), MASK_TINT_ALPHA)
    return Image.composite(tinted, before, mask.point(lambda v: 255 if v >= MASK_THRESHOLD else 0))


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: Font, width_px: int) -> list[str]:
    """`text` broken into lines no wider than `width_px`, at most `NOTE_MAX_LINES`."""
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for word in paragraph.split(" "):
            candidate = f"{line} {word}".strip()
            if line and draw.textlength(candidate, font=font) > width_px:
                lines.append(line)
                line = word
            else:
                line = candidate
        lines.append(line)
    lines = [part for line in lines for part in _split_long(draw, line, font, width_px)]
    return lines[:NOTE_MAX_LINES]


def _split_long(draw: ImageDraw.ImageDraw, line: str, font: Font, width_px: int) -> list[str]:
    """A single over-long word (an URL, an id) cut into pieces that fit."""
    pieces: list[str] = []
    while draw.textlength(line, font=font) > width_px and len(line) > 1:
        cut = len(line) - 1
        while cut > 1 and draw.textlength(line[:cut], font=font) > width_px:
            cut -= 1
        pieces.append(line[:cut])
        line = line[cut:]
    return [*pieces, line]


def _failed_tile(note: str, thumb_px: int) -> Image.Image:
    tile = Image.new("RGB", (thumb_px, thumb_px), FAILED_TILE)
    draw = ImageDraw.Draw(tile)
    margin = max(4, thumb_px // 16)
    draw.text((margin, margin), "failed", fill=FAILED_TEXT, font=_font(SHEET_TITLE_FONT_PX))
    note_font = _font(SHEET_NOTE_FONT_PX)
    lines = _wrap(draw, note, note_font, thumb_px - 2 * margin)
    top = margin + SHEET_TITLE_FONT_PX + margin
    draw.multiline_text((margin, top), "\n".join(lines), fill=SHEET_TEXT, font=note_font)
    return tile


def _after_tile(row: SheetRow, thumb_px: int) -> Image.Image:
    if row.after is None:
        return _failed_tile(row.note, thumb_px)
    try:
        return _thumb(_open_rgb(row.after), thumb_px)
    except (UnidentifiedImageError, OSError, ValueError):
        return _failed_tile(f"result does not decode. {row.note}".strip(), thumb_px)


def _row_tiles(row: SheetRow, thumb_px: int) -> list[Image.Image]:
    before = _thumb(_open_rgb(row.before_png), thumb_px)
    return [before, _overlay(before, row.mask_png), _after_tile(row, thumb_px)]


def _sheet_size(rows: int, thumb_px: int) -> tuple[int, int]:
    cell = thumb_px + SHEET_PAD_PX
    width = SHEET_PAD_PX + SHEET_LABEL_COL_PX + len(SHEET_COLUMNS) * cell
    height = SHEET_HEADER_PX + rows * cell + SHEET_PAD_PX
    return (width, height)


def _column_x(column: int, thumb_px: int) -> int:
    return SHEET_PAD_PX + SHEET_LABEL_COL_PX + column * (thumb_px + SHEET_PAD_PX)


def _draw_headers(sheet: Image.Image, thumb_px: int) -> None:
    draw = ImageDraw.Draw(sheet)
    font = _font(SHEET_TITLE_FONT_PX)
    for column, title in enumerate(SHEET_COLUMNS):
        centre = _column_x(column, thumb_px) + thumb_px / 2
        draw.text((centre, SHEET_HEADER_PX / 2), title, fill=SHEET_TEXT, font=font, anchor="mm")
    draw.line((0, SHEET_HEADER_PX - 1, sheet.width, SHEET_HEADER_PX - 1), fill=SHEET_RULE)


def _draw_row(sheet: Image.Image, row: SheetRow, top: int, thumb_px: int) -> None:
    draw = ImageDraw.Draw(sheet)
    label_width = SHEET_LABEL_COL_PX - SHEET_PAD_PX
    label_font = _font(SHEET_LABEL_FONT_PX)
    label = "\n".join(_wrap(draw, row.label, label_font, label_width))
    draw.multiline_text((SHEET_PAD_PX, top), label, fill=SHEET_TEXT, font=label_font)
    label_bottom = draw.multiline_textbbox((SHEET_PAD_PX, top), label, font=label_font)[3]
    note_font = _font(SHEET_NOTE_FONT_PX)
    note = "\n".join(_wrap(draw, row.note, note_font, label_width)) if row.note else ""
    draw.multiline_text((SHEET_PAD_PX, label_bottom + 6), note, fill=SHEET_MUTED, font=note_font)
    for column, tile in enumerate(_row_tiles(row, thumb_px)):
        x = _column_x(column, thumb_px) + (thumb_px - tile.width) // 2
        sheet.paste(tile, (x, top + (thumb_px - tile.height) // 2))
    rule_y = top + thumb_px + SHEET_PAD_PX // 2
    draw.line((SHEET_PAD_PX, rule_y, sheet.width - SHEET_PAD_PX, rule_y), fill=SHEET_RULE)


def contact_sheet(rows: Sequence[SheetRow], *, thumb_px: int = 256) -> bytes:
    """A PNG grid, one row per job: label | before | mask over before (red) | after.

    A row whose `after` is None (or does not decode) shows a grey "failed" tile with its
    note. Thumbnails keep their aspect ratio within `thumb_px` squares.
    """
    sheet = Image.new("RGB", _sheet_size(len(rows), thumb_px), SHEET_BACKGROUND)
    _draw_headers(sheet, thumb_px)
    for index, row in enumerate(rows):
        top = SHEET_HEADER_PX + SHEET_PAD_PX // 2 + index * (thumb_px + SHEET_PAD_PX)
        _draw_row(sheet, row, top, thumb_px)
    return _png(sheet)
