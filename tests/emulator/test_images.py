import base64
import io

import numpy as np
import pytest
from PIL import Image

from emulator.images import (
    ImageError,
    alpha_mask,
    decode_base64,
    encode,
    mask_array,
    open_image,
    rgb_array,
)
from tests.emulator.helpers import encoded, photo


def test_base64_must_be_strict() -> None:
    assert decode_base64(base64.b64encode(b"abc").decode()) == b"abc"
    for text in ["YWJj\n", "data:image/png;base64,YWJj", "YWJ", "é"]:
        with pytest.raises(ImageError, match="base64"):
            decode_base64(text)


@pytest.mark.parametrize("data", [b"", b"GIF89a", encoded(photo())[:60]])
def test_undecodable_bytes(data: bytes) -> None:
    with pytest.raises(ImageError, match="could not be decoded"):
        open_image(data)


def test_only_images_with_transparency_carry_a_mask() -> None:
    rgba = Image.new("RGBA", (4, 1), (9, 9, 9, 255))
    rgba.putpixel((0, 0), (9, 9, 9, 0))
    rgba.putpixel((1, 0), (9, 9, 9, 127))
    rgba.putpixel((2, 0), (9, 9, 9, 128))

    assert alpha_mask(photo()) is None
    assert alpha_mask(rgba).tolist() == [[True, True, False, False]]


def test_masks_are_thresholded_at_128() -> None:
    mask = Image.fromarray(np.array([[0, 127, 128, 255]], dtype=np.uint8))

    assert mask_array(mask).tolist() == [[False, False, True, True]]
    assert mask_array(mask.convert("RGB")).tolist() == [[False, False, True, True]]


@pytest.mark.parametrize(
    ("output_format", "pil_format"), [("png", "PNG"), ("jpeg", "JPEG"), ("webp", "WEBP")]
)
def test_encoding_is_deterministic_and_metadata_free(output_format: str, pil_format: str) -> None:
    rgb = rgb_array(photo())

    data = encode(rgb, output_format)

    decoded = Image.open(io.BytesIO(data))
    assert data == encode(rgb.copy(), output_format)
    assert decoded.format == pil_format
    assert decoded.size == (rgb.shape[1], rgb.shape[0])
    assert "exif" not in decoded.info


def test_png_is_lossless() -> None:
    rgb = rgb_array(photo())

    assert np.array_equal(rgb_array(open_image(encode(rgb, "png"))), rgb)
