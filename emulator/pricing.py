"""What a fill costs, in credits (1 credit = $0.01).

The emulator's price rule (the provider publishes per-image prices, not a formula):
credits per output megapixel, rounded up to the next hundredth of a credit.
`flux-pro-1.0-fill` costs 5 credits/MP, `flux-pro-1.0-fill-finetuned` 8 credits/MP.
Finetune training is free. Megapixels are reported rounded to two decimals.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal

FILL_CREDITS_PER_MP = Decimal(5)
FINETUNED_FILL_CREDITS_PER_MP = Decimal(8)
PIXELS_PER_MP = 1_000_000
CREDIT_STEP = Decimal("0.01")


def megapixels(width: int, height: int) -> float:
    """The exact size in megapixels."""
    return width * height / PIXELS_PER_MP


def reported_megapixels(width: int, height: int) -> float:
    """The size as the provider reports it: megapixels to two decimals."""
    return round(megapixels(width, height), 2)


def fill_cost(width: int, height: int, *, finetuned: bool) -> Decimal:
    """The credits a fill of this output size costs, rounded up to 0.01."""
    rate = FINETUNED_FILL_CREDITS_PER_MP if finetuned else FILL_CREDITS_PER_MP
    exact = Decimal(width * height) * rate / PIXELS_PER_MP
    return exact.quantize(CREDIT_STEP, rounding=ROUND_CEILING)
