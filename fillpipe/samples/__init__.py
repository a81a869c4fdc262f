"""Demo material: product shots with edit masks, brand swatches, and the contact sheet.

Everything here is drawn with Pillow and numpy, deterministically from a seed, so
`fillpipe demo` needs no downloaded data:

- `products`: product photos, their masks and prompts (`make_samples`), drawn on the
  canvas of `scene`;
- `finetune`: the brand-style training images and their zip (`make_finetune_images`,
  `finetune_zip`);
- `sheet`: the before/after contact sheet (`contact_sheet`).
"""

from fillpipe.samples.canvas import MIN_SIZE_PX
from fillpipe.samples.finetune import BRAND_PALETTE, finetune_zip, make_finetune_images
from fillpipe.samples.products import Sample, make_samples
from fillpipe.samples.sheet import (
    SHEET_COLUMNS,
    SHEET_HEADER_PX,
    SHEET_LABEL_COL_PX,
    SHEET_PAD_PX,
    SheetRow,
    contact_sheet,
)

__all__ = [
    "BRAND_PALETTE",
    "MIN_SIZE_PX",
    "SHEET_COLUMNS",
    "SHEET_HEADER_PX",
    "SHEET_LABEL_COL_PX",
    "SHEET_PAD_PX",
    "Sample",
    "SheetRow",
    "contact_sheet",
    "finetune_zip",
    "make_finetune_images",
    "make_samples",
]
