import numpy as np

from emulator.style import apply_style, learn_style, texture_gain


def two_colours() -> np.ndarray:
    image = np.zeros((40, 40, 3), dtype=np.uint8)
    image[:30] = (200, 20, 20)
    image[30:] = (20, 20, 200)
    return image


def test_the_palette_holds_the_dominant_colours_most_frequent_first() -> None:
    style = learn_style([two_colours()])

    assert style.as_json()["palette"] == ["#c81414", "#1414c8"]


def test_a_flat_image_has_no_contrast_or_texture() -> None:
    style = learn_style([np.full((10, 10, 3), 128, dtype=np.uint8)])

    assert style.contrast == 0
    assert style.texture == 0
    assert style.as_json()["palette"] == ["#808080"]


def test_learning_is_deterministic_and_uses_every_image() -> None:
    images = [two_colours(), np.full((50, 20, 3), (0, 200, 0), dtype=np.uint8)]

    first, second = learn_style(images), learn_style(images)

    assert first.as_json() == second.as_json()
    assert "#00c800" in first.as_json()["palette"]


def test_large_images_are_learned_from_a_thumbnail() -> None:
    big = np.repeat(np.repeat(two_colours(), 50, axis=0), 50, axis=1)

    assert learn_style([big]).as_json()["palette"] == ["#c81414", "#1414c8"]


def test_strength_scales_the_pull_toward_the_palette() -> None:
    style = learn_style([two_colours()])
    pixels = np.array([[180.0, 60.0, 60.0], [60.0, 60.0, 160.0]], dtype=np.float32)

    untouched = apply_style(pixels, style, 0.0)
    full = apply_style(pixels, style, 2.0)

    assert np.allclose(untouched, pixels)
    assert np.allclose(full, [[200, 20, 20], [20, 20, 200]])


def test_texture_gain_grows_with_strength() -> None:
    noisy = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    style = learn_style([noisy])

    assert texture_gain(style, 0.0) == 1.0
    assert 1.0 < texture_gain(style, 1.0) < texture_gain(style, 2.0)
