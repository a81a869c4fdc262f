"""The before/after contact sheet: one row per job with its label, the input, the mask
over the input in red, the result (or a grey "failed" tile with the reason), and a heat
map of how far the provider's own image strayed from the input outside the mask."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

from fillpipe.samples.canvas import MASK_THRESHOLD, RGB, png

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont

SHEET_PAD_PX = 16
SHEET_LABEL_COL_PX = 200
SHEET_HEADER_PX = 40
SHEET_TITLE_FONT_PX = 20
SHEET_LABEL_FONT_PX = 16
SHEET_NOTE_FONT_PX = 13
SHEET_COLUMNS = ("before", "mask", "after", "drift")
# The drift map: |provider - input| (mean of the channels) times this, on a heat scale;
# the masked region, where the provider was asked to change the image, is grey.
DRIFT_GAIN = 16.0
DRIFT_MASKED: RGB = (128, 128, 128)
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
class SheetRow:
    """One contact-sheet row; `after` is None when the job failed."""

    label: str
    before_png: bytes
    mask_png: bytes
    after: bytes | None
    note: str = ""
    # The provider's own image, before compositing (None: not at hand, no drift map).
    provider: bytes | None = None


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


def _drift_tile(row: SheetRow, thumb_px: int) -> Image.Image:
    """The heat map of the provider's drift outside the mask, or a grey "n/a" tile."""
    if row.provider is None:
        return _failed_tile("no provider image at hand", thumb_px)
    before = np.asarray(_open_rgb(row.before_png), dtype=np.float32)
    provider = _open_rgb(row.provider).resize(
        (before.shape[1], before.shape[0]), Image.Resampling.LANCZOS
    )
    drift = np.abs(np.asarray(provider, dtype=np.float32) - before).mean(axis=2)
    heat = np.clip(drift * DRIFT_GAIN, 0, 255).astype(np.uint8)
    coloured = cv2.cvtColor(cv2.applyColorMap(heat, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)
    with Image.open(io.BytesIO(row.mask_png)) as opened:
        masked = np.asarray(opened.convert("L").resize(provider.size)) >= MASK_THRESHOLD
    coloured[masked] = DRIFT_MASKED
    return _thumb(Image.fromarray(coloured), thumb_px)


def _row_tiles(row: SheetRow, thumb_px: int) -> list[Image.Image]:
    before = _thumb(_open_rgb(row.before_png), thumb_px)
    return [
        before,
        _overlay(before, row.mask_png),
        _after_tile(row, thumb_px),
        _drift_tile(row, thumb_px),
    ]


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
    """A PNG grid, one row per job: label | before | mask over before (red) | after |
    drift (the provider's image against the input, outside the mask; brighter = further).

    A row whose `after` is None (or does not decode) shows a grey "failed" tile with its
    note. Thumbnails keep their aspect ratio within `thumb_px` squares.
    """
    sheet = Image.new("RGB", _sheet_size(len(rows), thumb_px), SHEET_BACKGROUND)
    _draw_headers(sheet, thumb_px)
    for index, row in enumerate(rows):
        top = SHEET_HEADER_PX + SHEET_PAD_PX // 2 + index * (thumb_px + SHEET_PAD_PX)
        _draw_row(sheet, row, top, thumb_px)
    return png(sheet)
