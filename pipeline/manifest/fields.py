"""The manifest's fields, and the parser and check of each value.

Parsers take the raw value and the format: CSV cells are text, JSON values have types.
A value that fails raises `BadValue`, saying what is wrong and how to fix it.
"""

from __future__ import annotations

import difflib
import unicodedata
from collections.abc import Callable
from typing import Literal, Protocol, TypeVar

from pipeline import tags as s3tags
from pipeline.errors import BadValue, InputError
from pipeline.manifest.problems import plain, show
from pipeline.models import (
    COMPOSITE_MODES,
    FEATHER_PX,
    FINETUNE_STRENGTH,
    GUIDANCE,
    OUTPUT_FORMATS,
    SAFETY_TOLERANCE,
    SEED,
    STEPS,
    CompositeChoice,
    CompositeMode,
    EditParams,
    OutputFormat,
    Range,
)
from pipeline.storage import S3_SCHEME, S3Uri

ManifestFormat = Literal["jsonl", "csv"]
# The provider's parameters, as manifests and trigger rules both give them.
PARAM_FIELDS = (
    "prompt",
    "finetune_id",
    "finetune_strength",
    "steps",
    "guidance",
    "seed",
    "output_format",
    "safety_tolerance",
    "prompt_upsampling",
)
# How the output is made from the provider's result, as manifests and rules give it.
COMPOSITE_FIELDS = ("composite", "feather_px", "color_match")
KNOWN_FIELDS = (
    "id",
    "image",
    "mask",
    *PARAM_FIELDS,
    *COMPOSITE_FIELDS,
    "output",
    "tags",
    "account",
)
REQUIRED_FIELDS = ("image", "prompt", "finetune_id")
TAG_COLUMN_PREFIX = "tag."
MAX_ID_CHARS = 200
RANGE_DASH = "\u2013"
BOOL_WORDS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
_V = TypeVar("_V")
_D = TypeVar("_D")
_N = TypeVar("_N", int, float)
Parser = Callable[[object, ManifestFormat], _V]


class ValueReader(Protocol):
    """Reads one field with a parser: its value, or (absent, or reported as a problem)
    the default."""

    def __call__(self, name: str, parse: Parser[_V], default: _D) -> _V | _D: ...


def edit_params(get: ValueReader, prompt: str, finetune_id: str) -> EditParams:
    """The provider parameters: `prompt` and `finetune_id` as given, every other one read
    with `get`, checked against the provider's ranges, with the provider's defaults."""
    real, whole = "a number", "a whole number"
    default = EditParams(prompt, finetune_id)
    return EditParams(
        prompt=prompt,
        finetune_id=finetune_id,
        finetune_strength=get(
            "finetune_strength",
            ranged(as_number, FINETUNE_STRENGTH, real),
            default.finetune_strength,
        ),
        steps=get("steps", ranged(as_integer, STEPS, whole), default.steps),
        guidance=get("guidance", ranged(as_number, GUIDANCE, real), default.guidance),
        seed=get("seed", ranged(as_integer, SEED, whole), default.seed),
        output_format=get("output_format", as_format, default.output_format),
        safety_tolerance=get(
            "safety_tolerance",
            ranged(as_integer, SAFETY_TOLERANCE, whole),
            default.safety_tolerance,
        ),
        prompt_upsampling=get("prompt_upsampling", as_bool, default.prompt_upsampling),
    )


def composite_choice(get: ValueReader) -> CompositeChoice:
    """The compositing fields read with `get`; each absent one left to the default."""
    return CompositeChoice(
        mode=get("composite", as_composite_mode, None),
        feather_px=get("feather_px", ranged(as_integer, FEATHER_PX, "a whole number"), None),
        color_match=get("color_match", as_bool, None),
    )


def as_composite_mode(value: object, fmt: ManifestFormat) -> CompositeMode:
    text = as_text(value, fmt).strip().lower()
    for mode in COMPOSITE_MODES:
        if text == mode:
            return mode
    raise BadValue(
        f"composite must be {' or '.join(COMPOSITE_MODES)}, got {show(value)}",
        "paste (the default) lays the result over the source through the mask; none "
        "keeps the provider's image as delivered",
    )


def as_text(value: object, fmt: ManifestFormat) -> str:
    """A string of valid unicode (no lone surrogates)."""
    if not isinstance(value, str):
        raise BadValue(f"{show(value)} is not a string", "put the value in double quotes")
    if _has_surrogates(value):
        raise BadValue("has invalid unicode (a lone surrogate)", "save the manifest as UTF-8")
    return value


def as_number(value: object, fmt: ManifestFormat) -> float:
    """A number: any CSV cell `float` reads, a JSON number (not true/false)."""
    if fmt == "csv" and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise BadValue(f"{show(value)} is not a number", "write a number such as 1.5") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        hint = "write a JSON number such as 1.5, without quotes"
        raise BadValue(f"{show(value)} is not a number", hint)
    return value


def as_integer(value: object, fmt: ManifestFormat) -> int:
    """A whole number; a number with nothing after the point counts (20.0 is 20)."""
    if fmt == "csv" and isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    number = as_number(value, fmt)
    if isinstance(number, int):
        return number
    if number.is_integer():
        return int(number)
    raise BadValue(f"{show(value)} is not a whole number", "write a whole number such as 20")


def as_bool(value: object, fmt: ManifestFormat) -> bool:
    """JSON true/false; in CSV also the words of `BOOL_WORDS`, in any case."""
    if fmt == "csv" and isinstance(value, str) and value.strip().lower() in BOOL_WORDS:
        return BOOL_WORDS[value.strip().lower()]
    if isinstance(value, bool):
        return value
    hint = "write true or false" + (" (or yes/no, 1/0)" if fmt == "csv" else ", without quotes")
    raise BadValue(f"{show(value)} is not true or false", hint)


def as_format(value: object, fmt: ManifestFormat) -> OutputFormat:
    """One of the provider's output formats."""
    if value not in OUTPUT_FORMATS:
        raise BadValue(f"{show(value)} is not an output format", "use jpeg or png")
    return value


def ranged(parse: Parser[_N], limits: Range, kind: str) -> Parser[_N]:
    """`parse`, then refuse a number outside `limits`; `kind` names it in the hint."""

    def parse_in_range(value: object, fmt: ManifestFormat) -> _N:
        number = parse(value, fmt)
        if number not in limits:
            low, high = plain(limits.low), plain(limits.high)
            message = f"{plain(number)} is out of range {low}{RANGE_DASH}{high}"
            raise BadValue(message, f"use {kind} from {low} to {high}")
        return number

    return parse_in_range


def check_id(job_id: str) -> None:
    """A job id: not empty, not too long, no control characters, a valid S3 tag value."""
    if not job_id:
        raise BadValue("is empty", "leave id out to number rows, or give a name")
    if len(job_id) > MAX_ID_CHARS:
        raise BadValue(
            f"is {len(job_id)} characters long", f"keep ids to {MAX_ID_CHARS} characters"
        )
    if any(unicodedata.category(ch) == "Cc" for ch in job_id):
        raise BadValue(f"{show(job_id)} has control characters", "remove tabs and line breaks")
    problem = s3tags.value_problem(job_id)
    if problem:
        hint = f"ids become S3 tag values: use {s3tags.ALLOWED_CHARS_HINT}"
        raise BadValue(f"{show(job_id)} {problem}", hint)


def check_location(value: str) -> None:
    """An input location: an s3://bucket/key URI naming an object, or a local path."""
    if not value.strip():
        raise BadValue("is empty", "give an s3://bucket/key URI or a local path, or leave it out")
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        raise BadValue(f"{show(value)} has control characters", "remove tabs and line breaks")
    if value.startswith(S3_SCHEME):
        try:
            uri = S3Uri.parse(value)
        except InputError as error:
            raise BadValue(str(error), "write s3://bucket/key") from None
        if uri.key.endswith("/"):
            raise BadValue(f"{show(value)} names a folder, not an object", "name one image file")
    elif "://" in value:
        hint = "use s3://bucket/key (lower-case s3) or a path on this machine"
        raise BadValue(f"{show(value)} is neither an s3:// URI nor a local path", hint)


def _has_surrogates(text: str) -> bool:
    return any("\ud800" <= ch <= "\udfff" for ch in text)


def known_hint(name: str = "") -> str:
    """The known fields, led by the closest one to a misspelt `name`."""
    close = difflib.get_close_matches(name, KNOWN_FIELDS, n=1) if name else []
    known = "known fields: " + ", ".join(KNOWN_FIELDS)
    return (f"did you mean {close[0]!r}? " if close else "") + known


def tag_key_hint() -> str:
    """What a tag key may hold."""
    return (
        f"tag keys have 1{RANGE_DASH}{s3tags.MAX_KEY_CHARS} of {s3tags.ALLOWED_CHARS_HINT}, "
        "and may not start with aws: or fillpipe-"
    )
