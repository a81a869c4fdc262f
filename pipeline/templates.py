"""Output locations: an output template filled in for one job, kept inside its bucket."""

from __future__ import annotations

import re
import string
from pathlib import PurePosixPath

from pipeline.errors import InputError
from pipeline.storage import S3_SCHEME, S3Uri

PLACEHOLDERS = ("batch", "id", "ext", "stem")
DEFAULT_OUTPUT_TEMPLATE = "s3://{bucket}/outputs/{batch}/{id}.{ext}"
# A relative template is a key under the batch's output prefix.
DEFAULT_RELATIVE_TEMPLATE = "{id}.{ext}"
MAX_KEY_BYTES = 1024
TEMPLATE_HINT = (
    "write s3://BUCKET/key or a key relative to outputs/{batch}/, using only "
    "{batch} {id} {ext} {stem}"
)
_FORBIDDEN_SEGMENTS = frozenset({".", ".."})


def resolve_output(
    template: str | None, *, bucket: str, batch_id: str, job_id: str, ext: str, image: str
) -> S3Uri:
    """Where one job's output goes; `InputError` when the template is unusable."""
    values = {"batch": batch_id, "id": job_id, "ext": ext, "stem": image_stem(image)}
    filled = fill(DEFAULT_RELATIVE_TEMPLATE if template is None else template, values)
    if not filled:
        raise InputError("output key is empty")
    if filled.startswith(S3_SCHEME):
        uri = S3Uri.parse(filled)
        if uri.bucket != bucket:
            raise InputError(f"output bucket {uri.bucket!r} is not the batch's bucket {bucket!r}")
    else:
        if filled.startswith("/"):
            raise InputError(f"output key {filled!r} is absolute; keys are relative to the bucket")
        uri = S3Uri(bucket, f"outputs/{batch_id}/{filled}")
    check_key(uri.key)
    return uri


def fill(template: str, values: dict[str, str]) -> str:
    """`template` with its `{name}` placeholders replaced; no formats, no other names."""
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as error:
        raise InputError(f"output template {template!r} has unbalanced braces ({error})") from None
    pieces: list[str] = []
    for literal, name, spec, conversion in parts:
        pieces.append(literal)
        if name is None:
            continue
        if name not in values:
            raise InputError(f"output template has an unknown placeholder {{{name}}}")
        if spec or conversion:
            raise InputError(f"output placeholder {{{name}}} takes no format or conversion")
        pieces.append(values[name])
    return "".join(pieces)


def check_key(key: str) -> None:
    """`InputError` unless `key` names one object plainly (no `..`, no folder, not too long)."""
    if not key:
        raise InputError("output key is empty")
    if key.endswith("/"):
        raise InputError(f"output key {key!r} ends with '/' (a folder, not an object)")
    if _FORBIDDEN_SEGMENTS.intersection(key.split("/")):
        raise InputError(f"output key {key!r} has a '.' or '..' segment")
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise InputError(f"output key is longer than S3's {MAX_KEY_BYTES} bytes")


def image_stem(image: str) -> str:
    """The image's file name without its extension, for URIs and local paths alike."""
    name = re.split(r"[/\\]", image.rstrip("/\\"))[-1]
    return PurePosixPath(name).stem if name else ""
