"""Product shots with edit masks and prompts: mugs, sneakers, bottles, t-shirts, totes
and phones, each drawn deterministically from a seed (see `fillpipe.samples.scene`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from fillpipe.samples.canvas import RGB, Point, check_count_and_size
from fillpipe.samples.scene import (
    Scene,
    ellipse,
    line,
    mix,
    pick,
    polygon,
    rect,
    shade,
    soft_layer,
    spotlight,
    to_image,
    union,
    vertical_gradient,
)

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


@dataclass(frozen=True)
class Sample:
    """One demo edit: an RGB PNG, its binary L mask (255 = repaint) and the prompt."""

    name: str
    image_png: bytes
    mask_png: bytes
    prompt: str


def _draw_table(scene: Scene, horizon: float) -> None:
    """A wooden tabletop from `horizon` (canvas units) down, with faint grain."""
    top = round(horizon * scene.unit)
    height = scene.side - top
    y, x = np.mgrid[0:height, 0 : scene.side].astype(np.float32)
    warp = 1.5 * np.sin(x / (13.0 * scene.unit)) + 0.5 * np.sin(x / (4.0 * scene.unit))
    grain = np.sin(y / (0.45 * scene.unit) + warp)
    light = 1.0 - 0.15 * (y / height) + 0.035 * grain
    wood = np.asarray(WOOD_RGB, np.float32)[None, None, :] * light[..., None]
    scene.image.paste(to_image(wood), (0, top))
    edge = (0, top, scene.side, top + scene.length(0.6))
    ImageDraw.Draw(scene.image).rectangle(edge, fill=shade(WOOD_RGB, 1.25))


def _draw_mug(scene: Scene) -> None:
    colour = pick(scene.rng, PRODUCT_COLOURS)
    scene.backdrop(BACKDROPS[int(scene.rng.integers(len(BACKDROPS)))])
    _draw_table(scene, horizon=64.0)
    scene.shadow((30, 74, 78, 84), blur_units=2.0, opacity=0.55)
    handle = (56, 42, 75, 68)
    ImageDraw.Draw(scene.image).ellipse(
        scene.box(*handle), outline=shade(colour, 0.8), width=scene.length(4.2)
    )
    body = union(rect(scene, (34, 34, 62, 76)), ellipse(scene, (34, 72, 62, 80)))
    scene.cylinder(body, colour, 34, 62)
    scene.mark(union(rect(scene, (34, 38, 62, 76)), ellipse(scene, (34, 72, 62, 80))))
    scene.fill(ellipse(scene, (34, 30, 62, 38)), shade(colour, 1.25))
    scene.fill(ellipse(scene, (35.5, 31, 60.5, 37)), shade(colour, 0.55))
    scene.fill(ellipse(scene, (37, 32.4, 59, 37)), (70, 42, 26))


def _draw_sneaker(scene: Scene) -> None:
    colour = pick(scene.rng, PRODUCT_COLOURS)
    accent = pick(scene.rng, PRODUCT_COLOURS)
    scene.backdrop(BACKDROPS[int(scene.rng.integers(len(BACKDROPS)))])
    scene.shadow((12, 68, 92, 80), blur_units=2.2, opacity=0.5)
    upper = polygon(scene, SNEAKER_UPPER)
    scene.soft(upper, colour, 32, 67)
    scene.mark(upper)
    scene.fill(polygon(scene, SNEAKER_HEEL), shade(accent, 0.95))
    scene.fill(polygon(scene, SNEAKER_TOE), shade(colour, 1.15))
    scene.fill(polygon(scene, SNEAKER_STRIPE), shade(accent, 1.05))
    scene.fill(polygon(scene, SNEAKER_COLLAR), (34, 30, 30))
    for step in range(4):
        x, y = 49.5 + step * 3.6, 38.5 + step * 2.6
        line(scene, [(x - 2.5, y + 2.2), (x + 2.8, y - 1.2)], OFF_WHITE, 1.0)
    sole = rect(scene, (14, 63, 90, 72), radius=4.0)
    scene.fill(sole, OFF_WHITE)
    scene.unmark(sole)
    scene.fill(rect(scene, (14.5, 69.5, 89.5, 72.5), radius=2.5), (120, 96, 72))
    line(scene, [(16, 66), (88, 66)], (214, 208, 198), 0.5)


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


def _draw_bottle(scene: Scene) -> None:
    glass = pick(scene.rng, GLASS_COLOURS)
    ink = pick(scene.rng, PRODUCT_COLOURS)
    scene.backdrop(BACKDROPS[int(scene.rng.integers(len(BACKDROPS)))])
    scene.shadow((32, 82, 72, 90), blur_units=2.0, opacity=0.55)
    body = union(
        rect(scene, (36, 40, 64, 87), radius=3.0),
        ellipse(scene, (36, 28, 64, 52)),
        rect(scene, (45.5, 12, 54.5, 34), radius=1.0),
    )
    scene.cylinder(body, glass, 36, 64)
    scene.cylinder(rect(scene, (44.5, 8, 55.5, 16), radius=1.2), (196, 160, 70), 44.5, 55.5)
    label = rect(scene, (36, 48, 64, 76))
    scene.cylinder(label, LABEL_PAPER, 36, 64)
    scene.mark(label)
    scene.fill(rect(scene, (36, 50, 64, 53)), ink)
    scene.fill(rect(scene, (36, 71, 64, 74)), ink)
    scene.fill(ellipse(scene, (45, 56, 55, 64)), shade(ink, 1.15))
    for y in (66.0, 68.5):
        line(scene, [(42, y), (58, y)], INK, 0.8)


def _draw_tshirt(scene: Scene) -> None:
    colour = pick(scene.rng, PRODUCT_COLOURS)
    scene.backdrop(BACKDROPS[int(scene.rng.integers(len(BACKDROPS)))])
    scene.shadow((22, 80, 80, 92), blur_units=3.0, opacity=0.35)
    scene.soft(polygon(scene, TSHIRT_OUTLINE), colour, 17, 86)
    scene.fill(polygon(scene, [(38, 17), *TSHIRT_NECKLINE, (62, 17)]), shade(colour, 0.55))
    scene.fill(polygon(scene, TSHIRT_BACK_COLLAR), shade(colour, 0.9))
    line(scene, [(38, 17), *TSHIRT_NECKLINE, (62, 17)], shade(colour, 0.82), 1.4)
    for points in ([(71, 40), (68, 56)], [(29, 40), (32, 56)], [(44, 84), (47, 72)]):
        line(scene, points, shade(colour, 0.88), 0.6)
    scene.mark(rect(scene, (37, 31, 63, 63)))


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


def _draw_tote(scene: Scene) -> None:
    dye = float(scene.rng.uniform(*TOTE_DYE))
    canvas = mix(CANVAS_RGB, pick(scene.rng, PRODUCT_COLOURS), dye)
    scene.backdrop(BACKDROPS[int(scene.rng.integers(len(BACKDROPS)))])
    scene.shadow((22, 82, 82, 92), blur_units=2.5, opacity=0.45)
    for left in (32.0, 52.0):
        ImageDraw.Draw(scene.image).arc(
            scene.box(left, 14, left + 16, 58),
            180,
            360,
            fill=shade(canvas, 0.8),
            width=scene.length(2.6),
        )
    bag = polygon(scene, [(26, 38), (74, 38), (78, 88), (22, 88)])
    noise = scene.rng.normal(0.0, CANVAS_NOISE_STD, (scene.side, scene.side, 1))
    span = (scene.xy(0, 38)[1], scene.xy(0, 88)[1])
    layer = np.asarray(soft_layer(scene.image.size, canvas, span), np.float32)
    scene.fill_layer(bag, to_image(layer + noise))
    line(scene, [(26.5, 41.5), (73.5, 41.5)], shade(canvas, 0.75), 0.35)
    line(scene, [(28, 86), (72, 86)], shade(canvas, 0.8), 0.35)
    scene.mark(rect(scene, (34, 50, 66, 80)))


def _draw_phone(scene: Scene) -> None:
    frame = pick(scene.rng, PRODUCT_COLOURS)
    wallpaper = (pick(scene.rng, PRODUCT_COLOURS), pick(scene.rng, PRODUCT_COLOURS))
    scene.backdrop(BACKDROPS[int(scene.rng.integers(len(BACKDROPS)))])
    scene.shadow((36, 14, 72, 92), blur_units=3.0, opacity=0.45)
    scene.cylinder(rect(scene, (33, 10, 67, 88), radius=5.5), shade(frame, 0.7), 33, 67)
    scene.fill(rect(scene, (34.5, 11.5, 65.5, 86.5), radius=4.5), (16, 16, 20))
    screen_box = (36.0, 13.0, 64.0, 85.0)
    screen = rect(scene, screen_box, radius=3.5)
    x0, y0, x1, y1 = (round(v) for v in scene.box(*screen_box))
    paper = spotlight(vertical_gradient((x1 - x0, y1 - y0), *wallpaper), (0.3, 0.25))
    layer = Image.new("RGB", scene.image.size)
    layer.paste(to_image(paper), (x0, y0))
    scene.fill_layer(screen, layer)
    scene.mark(screen)
    scene.fill(rect(scene, (45, 15, 55, 18), radius=1.5), (8, 8, 10))
    scene.fill(rect(scene, (42, 24, 58, 30), radius=1.0), OFF_WHITE)
    scene.fill(rect(scene, (45, 32, 55, 33.5), radius=0.7), OFF_WHITE)
    scene.fill(rect(scene, (44, 81, 56, 82), radius=0.5), OFF_WHITE)


@dataclass(frozen=True)
class _Kind:
    name: str
    draw: Callable[[Scene], None]
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
    check_count_and_size(count, size_px)
    return [_make_sample(index, size_px, seed) for index in range(count)]


def _make_sample(index: int, size_px: int, seed: int) -> Sample:
    kind = KINDS[index % len(KINDS)]
    rng = np.random.default_rng([seed, index])
    scene = Scene(size_px, rng)
    kind.draw(scene)
    image_png, mask_png = scene.finish()
    prompt = kind.prompts[int(rng.integers(len(kind.prompts)))]
    return Sample(f"{kind.name}-{index + 1:02d}", image_png, mask_png, prompt)
