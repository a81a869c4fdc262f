"""Time of the paste-back's array work beside Pillow's plain `Image.composite`.

For each size (`--sizes`, in megapixels, square images) it makes a textured source, a
mask with one irregular region of about a fifth of the image, and a result that is the
source with a smooth colour drift that varies across the image, a little noise and a
plain edit inside the region. Then, `--repeat` times, in turn (so a busy machine slows
both alike): `pipeline.compositing_paste.paste` with colour matching (the array work of
`pipeline.compositing.finish` in mode "paste", on decoded arrays) and
`Image.composite(result, source, mask)` on the same images as Pillow images. The QA
figures' array work (`drift`, `seam`) and the PNG and JPEG encodes of the output are
timed beside them, fewer times. Figures only: nothing here asserts on time.
Run: `python -m bench.bench_composite`.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image

from pipeline.compositing import encode
from pipeline.compositing_paste import Image8, paste
from pipeline.compositing_quality import drift, seam

TARGET_RATIO = 3.0
FEATHER_PX = 4
# The source's texture: blurred noise at three scales (sigma px: std in levels), a
# photograph's broad shapes, details and grain.
TEXTURE_SCALES = ((40.0, 40.0), (6.0, 15.0), (1.2, 5.0))
DRIFT_LEVELS = 6.0
NOISE_LEVELS = 1.5
EDIT_COLOUR = (200, 60, 40)
REGION_RADIUS_FRACTION = 0.25
EXTRA_RUNS_DIVISOR = 4
SEED = 7


@dataclass(frozen=True)
class Images:
    """One case's source, mask and result, as arrays and as Pillow images."""

    source: Image8
    mask: Image8
    result: Image8

    def pillow(self) -> tuple[Image.Image, Image.Image, Image.Image]:
        return (
            Image.fromarray(self.source),
            Image.fromarray(self.mask),
            Image.fromarray(self.result),
        )


def irregular_mask(side_px: int) -> Image8:
    """One lobed region off the image's centre, about a fifth of the image."""
    angles = np.linspace(0, 2 * math.pi, 720, endpoint=False)
    radius = REGION_RADIUS_FRACTION * side_px
    radii = radius * (1 + 0.25 * np.sin(3 * angles) + 0.15 * np.sin(7 * angles + 1))
    centre = (0.55 * side_px, 0.45 * side_px)
    points = np.stack(
        [centre[0] + radii * np.cos(angles), centre[1] + radii * np.sin(angles)], axis=-1
    )
    mask = np.zeros((side_px, side_px), np.uint8)
    cv2.fillPoly(mask, [points.round().astype(np.int32)], 255)
    return mask


def texture(rng: np.random.Generator, side_px: int) -> npt.NDArray[np.float32]:
    """A colour texture about mid-grey, blurred noise at TEXTURE_SCALES."""
    total = np.full((side_px, side_px, 3), 128, np.float32)
    for sigma_px, levels in TEXTURE_SCALES:
        layer = cv2.GaussianBlur(
            rng.normal(0, 1, (side_px, side_px, 3)).astype(np.float32), (0, 0), sigma_px
        )
        total += layer * np.float32(levels / max(float(layer.std()), 1e-6))
    return total


def make_images(side_px: int) -> Images:
    """A textured source, an irregular mask and a drifted, edited result."""
    rng = np.random.default_rng(SEED)
    source = np.clip(texture(rng, side_px), 0, 255).round().astype(np.uint8)
    rows, columns = np.mgrid[0:side_px, 0:side_px].astype(np.float32) / side_px
    drift_field = np.stack(
        [DRIFT_LEVELS * np.sin(2 * math.pi * (columns + rows) + phase) for phase in (0, 2, 4)],
        axis=-1,
    )
    grain = rng.normal(0, NOISE_LEVELS, source.shape).astype(np.float32)
    result = source.astype(np.float32) + drift_field + grain
    mask = irregular_mask(side_px)
    inside = cv2.erode(mask, np.ones((31, 31), np.uint8)) > 0
    result[inside] = EDIT_COLOUR
    return Images(source, mask, np.clip(result, 0, 255).round().astype(np.uint8))


def timed_ms(work: Callable[[], object]) -> float:
    started = time.perf_counter()
    work()
    return (time.perf_counter() - started) * 1000


def p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]


def row(label: str, values: list[float]) -> str:
    return f"    {label:34s} {len(values):5d} {statistics.median(values):9.2f} {p90(values):9.2f}"


def run_case(megapixels: float, repeat: int) -> None:
    """Time one size and print its table and ratio."""
    side_px = round(math.sqrt(megapixels * 1_000_000))
    images = make_images(side_px)
    source_image, mask_image, result_image = images.pillow()
    area = float((images.mask > 0).mean())
    pasted, composite = [], []
    for _ in range(repeat):
        pasted.append(timed_ms(lambda: paste_case(images)))
        composite.append(timed_ms(lambda: Image.composite(result_image, source_image, mask_image)))
    output = paste_case(images)
    extra = max(3, repeat // EXTRA_RUNS_DIVISOR)
    figures = [timed_ms(lambda: quality_case(images, output)) for _ in range(extra)]
    png = [timed_ms(lambda: encode(output, "png")) for _ in range(extra)]
    jpeg = [timed_ms(lambda: encode(output, "jpeg")) for _ in range(extra)]
    print(f"\n{side_px}x{side_px} ({side_px * side_px / 1e6:.1f} MP), mask {area:.0%} of the image")
    print(f"    {'':34s} {'runs':>5s} {'median ms':>9s} {'p90 ms':>9s}")
    print(row("paste with colour matching", pasted))
    print(row("Image.composite (Pillow)", composite))
    print(row("QA figures (drift + seam)", figures))
    print(row("encode PNG", png))
    print(row("encode JPEG q95", jpeg))
    ratio = statistics.median(pasted) / statistics.median(composite)
    verdict = "met" if ratio <= TARGET_RATIO else "NOT met"
    print(f"    paste / composite (medians) = {ratio:.2f}x vs <= {TARGET_RATIO:.0f}x ({verdict})")
    check_output(images, output)


def paste_case(images: Images) -> Image8:
    return paste(images.source, images.mask, images.result, feather_px=FEATHER_PX, color_match=True)


def quality_case(images: Images, output: Image8) -> None:
    drift(images.source, images.mask, images.result)
    seam(output, images.mask)


def check_output(images: Images, output: Image8) -> None:
    """Print the case's QA figures, and that the kept pixels are the source's."""
    kept = images.mask == 0
    exact = bool(np.array_equal(output[kept], images.source[kept]))
    drift_mean, drift_p99 = drift(images.source, images.mask, images.result)
    plain = paste(
        images.source, images.mask, images.result, feather_px=FEATHER_PX, color_match=False
    )
    print(
        f"    check: kept pixels equal the source: {exact}; drift mean {drift_mean:.2f}, "
        f"p99 {drift_p99:.0f}; seam {seam(output, images.mask):.2f} "
        f"(without colour matching {seam(plain, images.mask):.2f}, "
        f"the source's own {seam(images.source, images.mask):.2f})"
    )


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[1.0, 4.0], help="megapixels")
    parser.add_argument("--repeat", type=int, default=40)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    print(
        f"composite bench: paste-back (feather {FEATHER_PX} px, colour matching) vs "
        f"Image.composite, {args.repeat} runs each, in turn; cv2 threads "
        f"{cv2.getNumThreads()}"
    )
    for megapixels in args.sizes:
        run_case(megapixels, args.repeat)


if __name__ == "__main__":
    main()
