import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from fillpipe.samples import (
    BRAND_PALETTE,
    MIN_SIZE_PX,
    SHEET_COLUMNS,
    SHEET_HEADER_PX,
    SHEET_LABEL_COL_PX,
    SHEET_PAD_PX,
    Sample,
    SheetRow,
    contact_sheet,
    finetune_zip,
    make_finetune_images,
    make_samples,
)

pytestmark = pytest.mark.timeout(60)

SIZE_PX = 192
MIN_COVERAGE = 0.05
MAX_COVERAGE = 0.40


def decode(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return image


def coverage(mask_png: bytes) -> float:
    return float((np.asarray(decode(mask_png)) == 255).mean())


@pytest.fixture(scope="module")
def samples() -> list[Sample]:
    return make_samples(8, size_px=SIZE_PX, seed=7)


def test_samples_are_deterministic(samples):
    assert make_samples(8, size_px=SIZE_PX, seed=7) == samples


def test_a_different_seed_gives_different_images(samples):
    others = make_samples(8, size_px=SIZE_PX, seed=8)
    assert all(a.image_png != b.image_png for a, b in zip(samples, others, strict=True))


def test_a_sample_does_not_depend_on_the_count(samples):
    assert make_samples(3, size_px=SIZE_PX, seed=7) == samples[:3]


def test_images_are_rgb_and_masks_are_l_of_the_same_size(samples):
    for sample in samples:
        image, mask = decode(sample.image_png), decode(sample.mask_png)
        assert (image.format, image.mode, image.size) == ("PNG", "RGB", (SIZE_PX, SIZE_PX))
        assert (mask.format, mask.mode, mask.size) == ("PNG", "L", (SIZE_PX, SIZE_PX))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_masks_are_binary_and_cover_a_meaningful_region(seed):
    for sample in make_samples(6, size_px=SIZE_PX, seed=seed):
        assert set(np.unique(np.asarray(decode(sample.mask_png)))) == {0, 255}
        assert MIN_COVERAGE <= coverage(sample.mask_png) <= MAX_COVERAGE, sample.name


def test_the_default_size_is_512_with_masks_in_range():
    (sample,) = make_samples(1)
    assert decode(sample.image_png).size == (512, 512)
    assert MIN_COVERAGE <= coverage(sample.mask_png) <= MAX_COVERAGE


def test_names_are_unique_filename_safe_and_span_at_least_four_kinds(samples):
    names = [sample.name for sample in samples]
    assert len(set(names)) == len(names)
    assert all(name.replace("-", "").isalnum() for name in names)
    assert len({name.rsplit("-", 1)[0] for name in names}) >= 4


def test_every_sample_has_a_prompt(samples):
    assert all(sample.prompt.strip() for sample in samples)


def test_bad_arguments_are_refused():
    assert make_samples(0) == []
    with pytest.raises(ValueError, match="negative"):
        make_samples(-1)
    with pytest.raises(ValueError, match="size_px"):
        make_samples(1, size_px=MIN_SIZE_PX - 1)


def test_finetune_images_are_deterministic_pngs_in_the_brand_palette():
    images = make_finetune_images(5, seed=3)
    assert images == make_finetune_images(5, seed=3)
    assert images != make_finetune_images(5, seed=4)
    palette = np.asarray(BRAND_PALETTE, np.int16)
    for data in images:
        image = decode(data)
        assert (image.format, image.mode, image.size) == ("PNG", "RGB", (256, 256))
        pixels = np.asarray(image, np.int16).reshape(-1, 1, 3)
        nearest = np.abs(pixels - palette[None, :, :]).max(axis=2).min(axis=1)
        assert (nearest <= 8).mean() > 0.85  # the rest is anti-aliased edges


def test_finetune_zip_holds_the_images_in_order():
    images = make_finetune_images(3, size_px=64)
    archive = finetune_zip(images)
    assert finetune_zip(images) == archive
    with zipfile.ZipFile(io.BytesIO(archive)) as opened:
        assert opened.namelist() == ["image_001.png", "image_002.png", "image_003.png"]
        assert [opened.read(name) for name in opened.namelist()] == images


def test_finetune_zip_needs_an_image():
    with pytest.raises(ValueError, match="at least one"):
        finetune_zip([])


def expected_sheet_size(rows: int, thumb_px: int) -> tuple[int, int]:
    cell = thumb_px + SHEET_PAD_PX
    width = SHEET_PAD_PX + SHEET_LABEL_COL_PX + len(SHEET_COLUMNS) * cell
    return (width, SHEET_HEADER_PX + rows * cell + SHEET_PAD_PX)


def row(sample: Sample, after: bytes | None, note: str = "stored") -> SheetRow:
    return SheetRow(sample.name, sample.image_png, sample.mask_png, after, note)


@pytest.mark.parametrize("count", [1, 3])
def test_contact_sheet_has_one_row_per_job(samples, count):
    rows = [row(sample, sample.image_png) for sample in samples[:count]]
    sheet = decode(contact_sheet(rows, thumb_px=96))
    assert sheet.format == "PNG"
    assert sheet.size == expected_sheet_size(count, 96)


def test_contact_sheet_tints_the_mask_red(samples):
    sample = samples[0]
    sheet = np.asarray(decode(contact_sheet([row(sample, sample.image_png)], thumb_px=96)))
    top = SHEET_HEADER_PX + SHEET_PAD_PX // 2
    left = SHEET_PAD_PX + SHEET_LABEL_COL_PX
    before = sheet[top : top + 96, left : left + 96].astype(int)
    overlay = sheet[top : top + 96, left + 96 + SHEET_PAD_PX :][:, :96].astype(int)
    mask = np.asarray(decode(sample.mask_png).resize((96, 96))) > 127
    redder = (overlay[..., 0] - overlay[..., 1]) - (before[..., 0] - before[..., 1])
    assert redder[mask].mean() > 40
    assert abs(redder[~mask].mean()) < 5


def test_a_failed_row_renders_a_grey_tile(samples):
    failed = row(samples[1], None, "moderated: " + "x" * 200)
    sheet = np.asarray(decode(contact_sheet([failed], thumb_px=128)))
    assert sheet.shape[:2] == expected_sheet_size(1, 128)[::-1]
    left = SHEET_PAD_PX + SHEET_LABEL_COL_PX + 2 * (128 + SHEET_PAD_PX)
    top = SHEET_HEADER_PX + SHEET_PAD_PX // 2
    tile = sheet[top : top + 128, left : left + 128]
    assert (tile == (200, 200, 200)).all(axis=2).mean() > 0.5


def test_an_undecodable_result_renders_as_failed(samples):
    sheet = decode(contact_sheet([row(samples[0], b"not an image")], thumb_px=64))
    assert sheet.size == expected_sheet_size(1, 64)


def encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def test_thumbnails_keep_their_aspect_ratio():
    wide = encode(Image.new("RGB", (400, 100), (0, 0, 255)), "JPEG")
    mask = encode(Image.new("L", (400, 100), 0), "PNG")
    sheet = np.asarray(decode(contact_sheet([SheetRow("wide", wide, mask, wide)], thumb_px=100)))
    left = SHEET_PAD_PX + SHEET_LABEL_COL_PX
    top = SHEET_HEADER_PX + SHEET_PAD_PX // 2
    column = sheet[top : top + 100, left + 50]
    blue = (column[:, 2] > 200) & (column[:, 0] < 60)
    assert 23 <= int(blue.sum()) <= 27


def test_the_drift_map_lights_up_where_the_provider_strayed_outside_the_mask(samples):
    sample = samples[0]
    before = np.asarray(decode(sample.image_png).convert("RGB"), dtype=np.int16)
    shifted = before.copy()
    shifted[:, : before.shape[1] // 2] += 8  # the provider drifted on the left half only
    provider = Image.fromarray(np.clip(shifted, 0, 255).astype(np.uint8))
    out = io.BytesIO()
    provider.save(out, "PNG")
    drifted = SheetRow(
        sample.name, sample.image_png, sample.mask_png, out.getvalue(), "", out.getvalue()
    )

    sheet = np.asarray(decode(contact_sheet([drifted], thumb_px=128))).astype(int)

    left = SHEET_PAD_PX + SHEET_LABEL_COL_PX + 3 * (128 + SHEET_PAD_PX)
    top = SHEET_HEADER_PX + SHEET_PAD_PX // 2
    tile = sheet[top : top + 128, left : left + 128]
    small_mask = np.asarray(decode(sample.mask_png).resize((128, 128))) > 127
    kept_left, kept_right = ~small_mask, ~small_mask
    kept_left[:, 64:], kept_right[:, :64] = False, False
    brightness = tile.sum(axis=2)
    assert brightness[kept_left].mean() > brightness[kept_right].mean() + 100
