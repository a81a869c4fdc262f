from decimal import Decimal

import pytest

from emulator.pricing import fill_cost, reported_megapixels


@pytest.mark.parametrize(
    ("width", "height", "finetuned", "cost"),
    [
        (1000, 1000, True, "8.00"),
        (1000, 1000, False, "5.00"),
        (1024, 1024, True, "8.39"),  # 8.388608, rounded up
        (1, 1, False, "0.01"),  # never free
        (64, 48, True, "0.03"),
    ],
)
def test_cost_is_per_megapixel_rounded_up(
    width: int, height: int, finetuned: bool, cost: str
) -> None:
    assert fill_cost(width, height, finetuned=finetuned) == Decimal(cost)


def test_megapixels_are_reported_to_two_decimals() -> None:
    assert reported_megapixels(1024, 1024) == 1.05
    assert reported_megapixels(64, 48) == 0.0
