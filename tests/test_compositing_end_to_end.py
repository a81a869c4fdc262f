"""Outputs a retoucher can ship, on the session's embedded stack, with the emulator
re-encoding whole results as the provider does (drift on, its default): every kept pixel
of a PNG output is the source's own, for binary, soft and alpha masks; JPEG is close; a
result in another size comes back at the source's; `composite: none` stores the
provider's image as it came; the QA figures in `results.jsonl` reflect the drift, and
read zero with the emulator's drift off; on a flat source no seam shows above the
grain."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image, ImageFilter

from fillpipe.demo import provider_image, sample_spec
from fillpipe.samples import Sample, make_samples
from fillpipe.stack import EmbeddedStack
from pipeline.batches import batch_prefix, create_batch, new_batch_id
from pipeline.models import CompositeOptions, JobRecord, JobSpec
from pipeline.runtime import Runtime
from pipeline.states import JobState
from pipeline.storage import S3Uri
from tests.stacks import emulator_admin, wait_until_done

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

SIZE_PX = 128
# A JPEG output's kept pixels against the source: mean and worst absolute difference.
JPEG_MEAN_TOLERANCE = 1.5
JPEG_MAX_TOLERANCE = 24


def pixels(data: bytes, mode: str = "RGB") -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert(mode), dtype=np.int16)


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


@contextmanager
def emulator_rendering(stack: EmbeddedStack, **changes: object) -> Iterator[None]:
    """The emulator's rendering changed for the block (`PUT /admin/rendering`)."""
    with emulator_admin(stack) as admin:
        admin.put("/admin/rendering", json=changes).raise_for_status()
        try:
            yield
        finally:
            admin.put("/admin/rendering", json={"drift": True, "result_scale": 1.0})


def run(rt: Runtime, specs: Sequence[JobSpec]) -> dict[str, JobRecord]:
    """Record the jobs as one batch, wait for its end; the records by job id."""
    create_batch(rt, specs[0].ref.batch_id, list(specs))
    summary = wait_until_done(rt.ledger, specs[0].ref.batch_id, timeout_s=180)
    assert summary.counts == {JobState.STORED: len(specs)}, summary
    return {record.ref.job_id: record for record in rt.ledger.jobs.of_batch(summary.batch_id)}


def soft(sample: Sample) -> Sample:
    """The sample with its mask's edge blurred into greys."""
    mask = Image.open(io.BytesIO(sample.mask_png)).convert("L")
    blurred = mask.filter(ImageFilter.GaussianBlur(3))
    return replace(sample, name=f"{sample.name}-soft", mask_png=png(blurred))


def alpha_spec(rt: Runtime, spec: JobSpec, sample: Sample) -> JobSpec:
    """The job with its mask carried by the image's alpha channel (transparent = repaint)."""
    image = Image.open(io.BytesIO(sample.image_png)).convert("RGBA")
    mask = Image.open(io.BytesIO(sample.mask_png)).convert("L")
    image.putalpha(mask.point(lambda value: 255 - value))
    rt.storage.write(S3Uri.parse(spec.image_uri), png(image), content_type="image/png")
    return replace(spec, mask_uri=None, checked_inputs=None)


def kept(sample: Sample) -> np.ndarray:
    """Where the mask keeps the source: repaint weight exactly 0."""
    return pixels(sample.mask_png, "L") == 0


def output_of(rt: Runtime, record: JobRecord) -> bytes:
    return rt.storage.read(S3Uri.parse(record.spec.output_uri), max_bytes=1 << 24)


@pytest.fixture(scope="module")
def samples() -> list[Sample]:
    return make_samples(3, size_px=SIZE_PX, seed=23)


def test_png_outputs_keep_every_kept_pixel_for_binary_soft_and_alpha_masks(
    stack_rt: Runtime, finetune_id: str, samples: list[Sample]
) -> None:
    batch_id = new_batch_id()
    binary, blurred, carried = samples[0], soft(samples[1]), samples[2]
    specs = [
        sample_spec(stack_rt, batch_id, each, finetune_id, index)
        for index, each in enumerate((binary, blurred, carried), start=1)
    ]
    specs[2] = alpha_spec(stack_rt, specs[2], carried)

    records = run(stack_rt, specs)

    for sample in (binary, blurred, carried):
        record = records[sample.name]
        after, before = pixels(output_of(stack_rt, record)), pixels(sample.image_png)
        assert after.shape == before.shape
        assert np.array_equal(after[kept(sample)], before[kept(sample)]), sample.name
        assert np.abs(after[~kept(sample)] - before[~kept(sample)]).mean() > 5, "unedited"
        assert record.qa is not None and record.qa["composited"] is True
        assert record.qa["drift_mean"] > 1.0, "the emulator's drift is not seen"
        assert record.qa["flagged"] is False, record.qa
    rows = stack_rt.storage.read(
        S3Uri.parse(batch_prefix(stack_rt, batch_id) + "results.jsonl"), max_bytes=1 << 20
    )
    assert all(json.loads(line)["qa"]["composited"] for line in rows.decode().splitlines())


def test_a_jpeg_output_is_within_the_encoders_tolerance(
    stack_rt: Runtime, finetune_id: str, samples: list[Sample]
) -> None:
    sample = samples[0]
    spec = sample_spec(stack_rt, new_batch_id(), sample, finetune_id, 7, output_format="jpeg")

    record = run(stack_rt, [spec])[sample.name]

    after, before = pixels(output_of(stack_rt, record)), pixels(sample.image_png)
    difference = np.abs(after[kept(sample)] - before[kept(sample)])
    assert difference.mean() <= JPEG_MEAN_TOLERANCE, (difference.mean(), difference.max())
    assert difference.max() <= JPEG_MAX_TOLERANCE


def test_composite_none_stores_the_providers_image_as_delivered(
    stack_rt: Runtime, finetune_id: str, samples: list[Sample]
) -> None:
    sample = samples[1]
    spec = sample_spec(stack_rt, new_batch_id(), sample, finetune_id, 8)
    spec = replace(spec, composite=CompositeOptions(mode="none"))

    record = run(stack_rt, [spec])[sample.name]

    assert output_of(stack_rt, record) == provider_image(stack_rt, record)
    assert record.qa is not None and record.qa["composited"] is False
    assert record.qa["drift_mean"] > 1.0


def test_a_result_in_another_size_is_resampled_to_the_sources(
    stack: EmbeddedStack, stack_rt: Runtime, finetune_id: str, samples: list[Sample]
) -> None:
    sample = samples[2]
    spec = sample_spec(stack_rt, new_batch_id(), sample, finetune_id, 9)

    with emulator_rendering(stack, result_scale=0.5):
        record = run(stack_rt, [spec])[sample.name]

    after, before = pixels(output_of(stack_rt, record)), pixels(sample.image_png)
    assert after.shape == before.shape
    assert np.array_equal(after[kept(sample)], before[kept(sample)])
    assert record.qa is not None and record.qa["resized"] is True


def test_without_the_emulators_drift_the_drift_reads_zero(
    stack: EmbeddedStack, stack_rt: Runtime, finetune_id: str, samples: list[Sample]
) -> None:
    sample = samples[0]
    spec = sample_spec(stack_rt, new_batch_id(), sample, finetune_id, 10)

    with emulator_rendering(stack, drift=False):
        record = run(stack_rt, [spec])[sample.name]

    assert record.qa is not None
    assert (record.qa["drift_mean"], record.qa["drift_p99"]) == (0.0, 0.0)
    assert record.qa["flagged"] is False


def flat_sample(name: str, prompt: str) -> Sample:
    """A flat colour with a little grain, its middle third to repaint."""
    grain = np.random.default_rng(5).normal(0, 1.5, (SIZE_PX, SIZE_PX, 3))
    image = np.clip(np.array([176, 140, 96]) + grain, 0, 255).astype(np.uint8)
    mask = np.zeros((SIZE_PX, SIZE_PX), np.uint8)
    third = SIZE_PX // 3
    mask[third : 2 * third, third : 2 * third] = 255
    return Sample(name, png(Image.fromarray(image)), png(Image.fromarray(mask)), prompt)


def neighbour_noise(image: np.ndarray, keep: np.ndarray) -> float:
    """Mean |difference between horizontal neighbours| over the kept area."""
    both = keep[:, 1:] & keep[:, :-1]
    return float(np.abs(np.diff(image, axis=1))[both].mean())


def edge_step(image: np.ndarray, keep: np.ndarray) -> float:
    """Mean |difference| between each kept pixel and its repainted neighbour across the
    mask's edge (left, right, above, below)."""
    steps = []
    for axis in (0, 1):
        difference = np.abs(np.diff(image, axis=axis))
        kept_side = np.diff(keep.astype(np.int8), axis=axis) != 0
        steps.append(difference[kept_side])
    return float(np.concatenate(steps).mean())


def test_on_a_flat_source_the_colour_step_at_the_edge_is_within_the_grain(
    stack_rt: Runtime, finetune_id: str, samples: list[Sample]
) -> None:
    sample = flat_sample("flat", samples[0].prompt)
    batch_id = new_batch_id()
    matched, plain = (
        replace(
            sample_spec(stack_rt, batch_id, replace(sample, name=name), finetune_id, 11),
            composite=CompositeOptions(feather_px=0, color_match=match),
        )
        for name, match in (("matched", True), ("plain", False))
    )

    records = run(stack_rt, [matched, plain])

    keep = kept(sample)
    noise = neighbour_noise(pixels(sample.image_png), keep)
    step = {name: edge_step(pixels(output_of(stack_rt, records[name])), keep) for name in records}
    assert step["matched"] <= noise, (step, noise)
    assert step["plain"] > noise, (step, noise)  # the drift shows without the matching
