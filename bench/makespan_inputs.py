"""The makespan bench's jobs: a few image + mask pairs of one size, as files for a
manifest and as base64 for the script's request bodies, and the same jobs both ways."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fillpipe.samples import make_samples
from pipeline.models import EditParams, OutputFormat

SAMPLES = 6  # distinct image + mask pairs, reused across a case's rows


@dataclass(frozen=True)
class Inputs:
    """`SAMPLES` image + mask pairs of one size: as files (for the manifest) and as
    base64 (for the script's bodies, each string shared by every body that uses it)."""

    files: list[tuple[Path, Path]]
    encoded: list[tuple[str, str]]
    prompts: list[str]


def write_inputs(folder: Path, size_px: int) -> Inputs:
    folder.mkdir(parents=True)
    files, encoded, prompts = [], [], []
    for sample in make_samples(SAMPLES, size_px=size_px):
        image, mask = folder / f"{sample.name}.png", folder / f"{sample.name}-mask.png"
        image.write_bytes(sample.image_png)
        mask.write_bytes(sample.mask_png)
        files.append((image, mask))
        encoded.append((_b64(sample.image_png), _b64(sample.mask_png)))
        prompts.append(sample.prompt)
    return Inputs(files, encoded, prompts)


def manifest_rows(
    inputs: Inputs, jobs: int, finetune_id: str, output_format: str
) -> list[dict[str, Any]]:
    """Row i (1-based) uses sample (i - 1) mod `SAMPLES`, id `job-i`, seed i."""
    rows = []
    for index in range(1, jobs + 1):
        image, mask = inputs.files[(index - 1) % SAMPLES]
        rows.append(
            {
                "id": f"job-{index:04d}",
                "image": str(image),
                "mask": str(mask),
                "prompt": inputs.prompts[(index - 1) % SAMPLES],
                "finetune_id": finetune_id,
                "seed": index,
                "output_format": output_format,
            }
        )
    return rows


def script_bodies(
    inputs: Inputs, jobs: int, finetune_id: str, output_format: OutputFormat
) -> list[dict[str, Any]]:
    """The provider bodies of `manifest_rows`' jobs, with the parameters fillpipe sends."""
    bodies = []
    for index in range(1, jobs + 1):
        image, mask = inputs.encoded[(index - 1) % SAMPLES]
        params = EditParams(
            prompt=inputs.prompts[(index - 1) % SAMPLES],
            finetune_id=finetune_id,
            seed=index,
            output_format=output_format,
        )
        bodies.append({**params.to_request(), "image": image, "mask": mask})
    return bodies


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
