"""The enqueue bench's world: Valkey and SeaweedFS S3 on loopback, a few image+mask
pairs in S3 and a JSONL manifest of as many rows as asked, spread over them."""

from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from PIL import Image, ImageDraw

HOST = "127.0.0.1"
BUCKET = "fillpipe"
INPUT_PAIRS = 4
IMAGE_SIZE = 64
STARTUP_TIMEOUT_S = 60.0
FINETUNE_ID = "acme-brand-v3"
PROMPTS = (
    "a matte terracotta glaze with soft studio light",
    "brushed stainless steel, subtle reflections, clean white backdrop",
    "a linen tablecloth in warm beige, morning sunlight",
    "deep forest green velvet, soft shadows",
    "polished walnut wood grain, product photography",
    "pastel pink ceramic with a speckled finish",
    "a marble countertop with faint grey veins",
    "recycled kraft paper packaging with the brand logo",
    "frosted glass with a gentle gradient, high key lighting",
    "navy blue denim texture, crisp detail",
    "a sandy beach at golden hour, shallow depth of field",
    "spring flowers scattered around the product, soft focus",
)
MARKETS = ("us", "uk", "de", "fr", "jp")


# ---------------------------------------------------------------------- the servers


@contextlib.contextmanager
def embedded_servers(root: Path) -> Iterator[dict[str, str]]:
    """Valkey and SeaweedFS S3 on loopback; yields the settings environ; stops both."""
    from fillpipe.servers import S3Credentials, SeaweedS3Server, ValkeyServer

    valkey = ValkeyServer(root / "valkey", root / "valkey.log", environ=_hermetic_environ())
    s3 = SeaweedS3Server(
        root / "s3",
        root / "s3.log",
        credentials=S3Credentials.load_or_create(root / "s3-credentials"),
        bucket=BUCKET,
        environ=_hermetic_environ(),
    )
    try:
        valkey.start(timeout_s=STARTUP_TIMEOUT_S)
        s3.start(timeout_s=STARTUP_TIMEOUT_S)
        yield {
            **s3.env,
            "FILLPIPE_REDIS_URL": valkey.url,
            "FILLPIPE_PROVIDER_URL": f"http://{HOST}:9",
            "FILLPIPE_PROVIDER_KEY": "bench-key",
            "FILLPIPE_PUBLIC_URL": f"http://{HOST}:9",
            "FILLPIPE_SIGNING_KEY": secrets.token_urlsafe(32),
        }
    finally:
        s3.stop()
        valkey.stop()


def _hermetic_environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("FILLPIPE_", "AWS_"))}


# ------------------------------------------------------------------------ the inputs


def upload_inputs(environ: dict[str, str]) -> list[tuple[str, str]]:
    """`INPUT_PAIRS` small PNG image+mask pairs in S3; their s3:// URIs."""
    from pipeline.settings import Settings
    from pipeline.storage import S3Uri, Storage

    storage = Storage.from_settings(Settings.from_environ(environ))
    pairs = []
    for index in range(INPUT_PAIRS):
        image_uri = f"s3://{BUCKET}/inputs/bench/photo-{index}.png"
        mask_uri = f"s3://{BUCKET}/inputs/bench/photo-{index}-mask.png"
        storage.write(S3Uri.parse(image_uri), _png(_photo(index)), content_type="image/png")
        storage.write(S3Uri.parse(mask_uri), _png(_mask()), content_type="image/png")
        pairs.append((image_uri, mask_uri))
    return pairs


def _photo(index: int) -> Image.Image:
    image = Image.new("RGB", (IMAGE_SIZE, IMAGE_SIZE), (40 * index, 120, 200 - 30 * index))
    ImageDraw.Draw(image).ellipse((16, 16, 48, 48), fill=(230, 230, 230))
    return image


def _mask() -> Image.Image:
    mask = Image.new("L", (IMAGE_SIZE, IMAGE_SIZE), 0)
    ImageDraw.Draw(mask).rectangle((16, 16, 48, 48), fill=255)
    return mask


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def write_manifest(path: Path, rows: int, pairs: list[tuple[str, str]]) -> int:
    """A JSONL manifest of `rows` edits over `pairs`; its size in bytes."""
    with path.open("w", encoding="utf-8") as file:
        for number in range(rows):
            image, mask = pairs[number % len(pairs)]
            row = {
                "id": job_id(number),
                "image": image,
                "mask": mask,
                "prompt": PROMPTS[number % len(PROMPTS)],
                "finetune_id": FINETUNE_ID,
                "finetune_strength": 1.2,
                "seed": number,
                "output_format": "jpeg" if number % 3 else "png",
                "tags": {"campaign": "spring-2026", "market": MARKETS[number % len(MARKETS)]},
            }
            file.write(json.dumps(row) + "\n")
    return path.stat().st_size


def job_id(number: int) -> str:
    return f"sku-{number:07d}"
