import io

import pytest
from PIL import Image

from pipeline.errors import InputError
from pipeline.images import check_edit_inputs, inputs_digest, inspect
from tests.pipeline.fakes import truncated_png

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


def test_headers_only_still_check_size_alpha_and_format():
    truncated = truncated_png(size=(32, 24))
    with pytest.raises(InputError, match="the image does not decode"):
        check_edit_inputs(truncated, png("L"))
    assert check_edit_inputs(truncated, png("L"), full=False).width == 32
    with pytest.raises(InputError, match="mask is 10x10"):
        check_edit_inputs(truncated, png("L", (10, 10)), full=False)
    with pytest.raises(InputError, match="no alpha channel"):
        check_edit_inputs(truncated, None, full=False)
    with pytest.raises(InputError, match="does not decode"):
        check_edit_inputs(b"not an image", None, full=False)


def test_inputs_digest_names_the_pair_byte_for_byte():
    image, mask = png(), png("L")
    assert inputs_digest(image, mask) == inputs_digest(bytes(image), bytes(mask))
    others = {inputs_digest(image, None), inputs_digest(image, b""), inputs_digest(image, mask)}
    assert len(others) == 3
    assert inputs_digest(image + mask[:1], mask[1:]) != inputs_digest(image, mask)
