import io

import pytest
from PIL import Image

from pipeline.errors import InputError, UnsafeResult
from pipeline.images import check_edit_inputs, check_result, inspect

pytestmark = pytest.mark.timeout(10)


def png(mode="RGB", size=(32, 24)) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size).save(buffer, format="PNG")
    return buffer.getvalue()


def test_inspect_describes_the_image():
    info = inspect(png("RGBA", (40, 30)))
    assert (info.width, info.height, info.format, info.has_alpha) == (40, 30, "PNG", True)


def test_mask_must_match_the_image_size():
    check_edit_inputs(png(), png("L"))
    with pytest.raises(InputError, match="mask is 10x10 but the image is 32x24"):
        check_edit_inputs(png(), png("L", (10, 10)))


def test_no_mask_needs_alpha():
    check_edit_inputs(png("RGBA"), None)
    with pytest.raises(InputError, match="no alpha channel"):
        check_edit_inputs(png("RGB"), None)


def test_garbage_and_truncated_bytes_are_refused():
    with pytest.raises(InputError, match="the image does not decode"):
        check_edit_inputs(b"not an image", None)
    with pytest.raises(UnsafeResult):
        check_result(png()[:40])
