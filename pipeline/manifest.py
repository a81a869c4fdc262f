"""Manifests: JSON Lines or CSV, read as a stream, every row checked, every problem listed.

Reading never stops at the first bad row: `validate_rows` yields the good rows as it goes
and, after the last one, raises `ManifestInvalid` listing every problem with its file, line
and field. Rows are trustworthy only once the iterator ends without raising. Memory grows
only with what must be unique (ids, and outputs of templates without `{id}`) and the
problems found.
"""

from __future__ import annotations

import csv
import difflib
import json
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Literal, TypeVar, cast
from urllib.parse import quote

from pipeline import tags as s3tags
from pipeline.errors import InputError
from pipeline.models import (
    EXTENSIONS,
    FINETUNE_STRENGTH,
    GUIDANCE,
    OUTPUT_FORMATS,
    SAFETY_TOLERANCE,
    SEED,
    STEPS,
    EditParams,
    OutputFormat,
    Range,
)
from pipeline.storage import S3_SCHEME, S3Uri
from pipeline.templates import TEMPLATE_HINT, resolve_output

__all__ = [
    "ManifestFormat",
    "ManifestInvalid",
    "ManifestRow",
    "Problem",
    "detect_format",
    "read_records",
    "resolve_output",
    "validate_rows",
]

ManifestFormat = Literal["jsonl", "csv"]
FORMATS_BY_SUFFIX: dict[str, ManifestFormat] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
}
KNOWN_FIELDS = (
    "id",
    "image",
    "mask",
    "prompt",
    "finetune_id",
    "finetune_strength",
    "steps",
    "guidance",
    "seed",
    "output_format",
    "safety_tolerance",
    "prompt_upsampling",
    "output",
    "tags",
)
REQUIRED_FIELDS = ("image", "prompt", "finetune_id")
TAG_COLUMN_PREFIX = "tag."
MAX_ID_CHARS = 200
RANGE_DASH = "\u2013"
MAX_SHOWN_CHARS = 60
MAX_PROBLEMS_LISTED = 200
S3_METADATA_LIMIT_BYTES = 2048
# Batch id, attempt, task id, prompt hash, seed, cost and the metadata names themselves.
METADATA_OVERHEAD_BYTES = 300
# Shaped like `pipeline.batches.new_batch_id`: checks templates before the batch exists.
PLACEHOLDER_BATCH_ID = "b20260101-00000000"
PLACEHOLDER_BUCKET = "fillpipe"
BOOL_WORDS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
_V = TypeVar("_V")
_D = TypeVar("_D")
_N = TypeVar("_N", int, float)
# Parsers take the raw value and the format: CSV cells are text, JSON values have types.
_Parser = Callable[[object, "ManifestFormat"], _V]
_CSV_QUOTING_HINT = (
    "put a cell holding commas, quotes or line breaks in double quotes, doubling inner quotes"
)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a manifest, where it is and how to fix it."""

    source: str
    line: int
    field: str
    message: str
    hint: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}: " + (f"{self.field}: " if self.field else "")
        return where + self.message + (f" ({self.hint})" if self.hint else "")


class ManifestInvalid(InputError):
    """The manifest has problems; `problems` lists every one of them."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(problems)
        self.problems = problems

    def __str__(self) -> str:
        count = len(self.problems)
        lines = [f"the manifest has {count} problem{'' if count == 1 else 's'}:"]
        lines += [str(problem) for problem in self.problems[:MAX_PROBLEMS_LISTED]]
        if count > MAX_PROBLEMS_LISTED:
            lines.append(f"… and {count - MAX_PROBLEMS_LISTED} more")
        return "\n".join(lines)


@dataclass(frozen=True)
class ManifestRow:
    """One valid edit of the manifest, as the user wrote it (outputs not yet resolved)."""

    line: int
    job_id: str
    image: str
    mask: str | None
    params: EditParams
    output: str | None
    tags: dict[str, str]


def detect_format(name: str) -> ManifestFormat:
    """The manifest's format, from the extension of its file name or s3:// key."""
    suffix = PurePosixPath(name.replace("\\", "/")).suffix.lower()
    if suffix in FORMATS_BY_SUFFIX:
        return FORMATS_BY_SUFFIX[suffix]
    raise InputError(
        f"cannot tell the format of manifest {name!r} from its extension: "
        "name it *.jsonl (or .ndjson, .json) for JSON Lines, *.csv for CSV"
    )


# ---------------------------------------------------------------------------- reading


def read_records(
    lines: Iterable[str],
    *,
    source: str,
    fmt: ManifestFormat,
    problems: list[Problem] | None = None,
) -> Iterator[tuple[int, dict[str, object]]]:
    """Yield `(line, record)` for every data row, lazily.

    Lines that cannot be read as a record are appended to `problems`; without that list,
    `ManifestInvalid` is raised after the last line instead.
    """
    sink: list[Problem] = [] if problems is None else problems
    lines = _without_bom(lines)
    if fmt == "csv":
        yield from _read_csv(lines, source, sink)
    else:
        yield from _read_jsonl(lines, source, sink)
    if problems is None and sink:
        raise ManifestInvalid(sink)


def _without_bom(lines: Iterable[str]) -> Iterator[str]:
    iterator = iter(lines)
    for first in iterator:
        yield first.removeprefix("\ufeff")
        break
    yield from iterator


def _read_jsonl(
    lines: Iterable[str], source: str, sink: list[Problem]
) -> Iterator[tuple[int, dict[str, object]]]:
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            record = json.loads(text, object_pairs_hook=_unique_keys)
        except (ValueError, RecursionError) as error:
            hint = 'write one JSON object per line, e.g. {"image": …, "prompt": …}'
            sink.append(Problem(source, number, "", f"not valid JSON: {_cut(str(error))}", hint))
            continue
        if not isinstance(record, dict):
            message = f"expected a JSON object, got {_json_type(record)}"
            sink.append(Problem(source, number, "", message, "write one object per line"))
            continue
        yield number, record


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    record = dict(pairs)
    if len(record) != len(pairs):
        names = [name for name, _ in pairs]
        duplicate = next(name for name in names if names.count(name) > 1)
        raise ValueError(f"the key {duplicate!r} appears twice")
    return record


def _terminated(lines: Iterable[str]) -> Iterator[str]:
    """Lines with their line break, so that line breaks inside quoted cells survive."""
    for line in lines:
        yield line if line.endswith(("\n", "\r")) else line + "\n"


def _read_csv(
    lines: Iterable[str], source: str, sink: list[Problem]
) -> Iterator[tuple[int, dict[str, object]]]:
    reader = csv.reader(_terminated(lines), strict=True)
    rows = _csv_rows(reader, source, sink)
    header = next(rows, None)
    if header is None:
        return
    columns = _csv_columns(header[1], source, sink)
    if columns is None:
        return
    for line, cells in rows:
        if len(cells) > len(columns):
            message = f"row has {len(cells)} cells but the header has {len(columns)}"
            sink.append(Problem(source, line, "", message, _CSV_QUOTING_HINT))
            continue
        yield line, _csv_record(columns, cells)


def _csv_rows(
    reader: Iterator[list[str]], source: str, sink: list[Problem]
) -> Iterator[tuple[int, list[str]]]:
    """Non-blank CSV records with the line each starts on; unreadable ones become problems."""
    line_num = 0
    while True:
        start = line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            sink.append(Problem(source, start, "", f"unreadable CSV: {error}", _CSV_QUOTING_HINT))
            cells = []
        line_num = reader.line_num  # type: ignore[attr-defined]
        if any(cells):
            yield start, cells
        elif line_num < start:
            return


def _csv_columns(header: list[str], source: str, sink: list[Problem]) -> list[str | None] | None:
    """The header's column names, None for columns to ignore; None if rows cannot be read."""
    columns: list[str | None] = []
    for position, raw in enumerate(header, start=1):
        name = raw.strip()
        problem = _column_problem(name, position, columns)
        if problem:
            sink.append(Problem(source, 1, name, *problem))
        columns.append(None if problem else name)
    missing = [name for name in REQUIRED_FIELDS if name not in columns]
    for name in missing:
        sink.append(Problem(source, 1, name, "required column is missing", _known_hint()))
    return None if missing else columns


def _column_problem(name: str, position: int, seen: list[str | None]) -> tuple[str, str] | None:
    if not name:
        return f"column {position} has no name", "give every column a name in the header"
    if name in seen:
        return "column appears twice in the header", "keep one column of each name"
    if name.startswith(TAG_COLUMN_PREFIX):
        tag_problem = s3tags.key_problem(name.removeprefix(TAG_COLUMN_PREFIX))
        if tag_problem:
            return f"tag key {tag_problem}", _tag_key_hint()
        return None
    if name == "tags":
        return "CSV manifests carry tags as columns", "name each tag column tag.<key>"
    if name not in KNOWN_FIELDS:
        return f"unknown column {name!r}", _known_hint(name)
    return None


def _csv_record(columns: list[str | None], cells: list[str]) -> dict[str, object]:
    record: dict[str, object] = {}
    tags: dict[str, str] = {}
    for name, cell in zip(columns, cells, strict=False):
        if name is None or cell == "":
            continue
        if name.startswith(TAG_COLUMN_PREFIX):
            tags[name.removeprefix(TAG_COLUMN_PREFIX)] = cell
        else:
            record[name] = cell
    if tags:
        record["tags"] = tags
    return record


# ---------------------------------------------------------------------------- validating


def validate_rows(
    lines: Iterable[str],
    *,
    source: str,
    fmt: ManifestFormat,
    bucket: str | None = None,
) -> Iterator[ManifestRow]:
    """Yield every valid row lazily; after the last, raise `ManifestInvalid` if any problem.

    `bucket` is the batch's bucket: output URIs naming another one are refused. Without it,
    only the templates' form is checked.
    """
    problems: list[Problem] = []
    seen = _Seen()
    count = 0
    for line, record in read_records(lines, source=source, fmt=fmt, problems=problems):
        count += 1
        check = _RowCheck(source, line, fmt, record, problems)
        row = check.row(str(count), seen, bucket)
        if row is not None:
            yield row
    if count == 0 and not problems:
        problems.append(Problem(source, 1, "", "the manifest has no rows", "add one row per edit"))
    if problems:
        raise ManifestInvalid(problems)


@dataclass
class _Seen:
    """What must be unique across rows: ids, and outputs of templates without `{id}`."""

    ids: dict[str, int] = field(default_factory=dict)
    outputs: dict[str, int] = field(default_factory=dict)


class _Bad(Exception):
    """A value that fails a check: what is wrong and how to fix it."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message, hint)
        self.message = message
        self.hint = hint


class _RowCheck:
    """Checks one record, reporting each failure as a `Problem`."""

    def __init__(
        self,
        source: str,
        line: int,
        fmt: ManifestFormat,
        record: dict[str, object],
        sink: list[Problem],
    ) -> None:
        self.source, self.line, self.fmt = source, line, fmt
        self.record = record
        self.sink = sink
        self.ok = True

    def report(self, field: str, message: str, hint: str) -> None:
        self.sink.append(Problem(self.source, self.line, field, message, hint))
        self.ok = False

    def value(self, name: str) -> object:
        """The field's value; JSON null counts as absent."""
        return self.record.get(name)

    def get(self, name: str, parse: _Parser[_V], default: _D) -> _V | _D:
        raw = self.value(name)
        if raw is None:
            return default
        try:
            return parse(raw, self.fmt)
        except _Bad as bad:
            self.report(name, bad.message, bad.hint)
            return default

    def required_text(self, name: str) -> str:
        if self.value(name) is None:
            self.report(name, "is required", f"give every row a {name}")
            return ""
        text = self.get(name, _as_text, "")
        if isinstance(self.value(name), str) and not text.strip():
            self.report(name, "is empty", f"give every row a {name}")
            return ""
        return text

    def row(self, row_number: str, seen: _Seen, bucket: str | None) -> ManifestRow | None:
        self.unknown_fields()
        job_id = self.job_id(row_number, seen.ids)
        image = self.required_text("image")
        image = self.location("image", image) if image else image
        mask = self.get("mask", _as_text, None)
        mask = self.location("mask", mask) if mask is not None else mask
        params = self.params()
        output = self.get("output", _as_text, None)
        tags = self.tags()
        self.metadata_size(job_id, image, mask)
        uri = self.output(output, bucket, job_id, image, params)
        if uri is not None and output is not None and "{id}" not in output:
            self.unique_output(str(uri), seen.outputs)
        if not self.ok or params is None:
            return None
        return ManifestRow(self.line, job_id, image, mask, params, output, tags)

    def unknown_fields(self) -> None:
        for name in self.record:
            if name not in KNOWN_FIELDS:
                self.report(name, f"unknown field {_show(name)}", _known_hint(name))

    def job_id(self, row_number: str, seen_ids: dict[str, int]) -> str:
        job_id = self.get("id", _as_text, row_number)
        try:
            _check_id(job_id)
        except _Bad as bad:
            self.report("id", bad.message, bad.hint)
        first = seen_ids.setdefault(job_id, self.line)
        if first != self.line:
            message = f"id {_show(job_id)} is already used on line {first}"
            self.report("id", message, "give every row its own id")
        return job_id

    def location(self, name: str, value: str) -> str:
        try:
            _check_location(value)
        except _Bad as bad:
            self.report(name, bad.message, bad.hint)
        return value

    def params(self) -> EditParams | None:
        prompt = self.required_text("prompt")
        finetune_id = self.required_text("finetune_id")
        if finetune_id:
            self.finetune_id(finetune_id)
        real, whole = "a number", "a whole number"
        default = EditParams(prompt, finetune_id)
        params = EditParams(
            prompt=prompt,
            finetune_id=finetune_id,
            finetune_strength=self.get(
                "finetune_strength",
                _ranged(_as_number, FINETUNE_STRENGTH, real),
                default.finetune_strength,
            ),
            steps=self.get("steps", _ranged(_as_integer, STEPS, whole), default.steps),
            guidance=self.get("guidance", _ranged(_as_number, GUIDANCE, real), default.guidance),
            seed=self.get("seed", _ranged(_as_integer, SEED, whole), default.seed),
            output_format=self.get("output_format", _as_format, default.output_format),
            safety_tolerance=self.get(
                "safety_tolerance",
                _ranged(_as_integer, SAFETY_TOLERANCE, whole),
                default.safety_tolerance,
            ),
            prompt_upsampling=self.get("prompt_upsampling", _as_bool, default.prompt_upsampling),
        )
        return params if prompt and finetune_id else None

    def finetune_id(self, finetune_id: str) -> None:
        problem = s3tags.value_problem(finetune_id)
        if problem:
            hint = f"finetune ids become S3 tag values: {s3tags.ALLOWED_CHARS_HINT}"
            self.report("finetune_id", f"{_show(finetune_id)} {problem}", hint)

    def tags(self) -> dict[str, str]:
        raw = self.value("tags")
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            self.report("tags", f"{_show(raw)} is not an object", 'write {"key": "value", …}')
            return {}
        tags: dict[str, str] = {}
        for key, value in raw.items():
            if self.tag(str(key), value):
                tags[str(key)] = cast(str, value)
        if len(raw) > s3tags.MAX_USER_TAGS:
            message = f"{len(raw)} tags, but S3 allows {s3tags.MAX_TAGS_PER_OBJECT} per object"
            hint = f"fillpipe sets {len(s3tags.OWN_TAG_KEYS)}: keep at most {s3tags.MAX_USER_TAGS}"
            self.report("tags", message, hint)
        return tags

    def tag(self, key: str, value: object) -> bool:
        field = TAG_COLUMN_PREFIX + key if self.fmt == "csv" else "tags"
        key_problem = s3tags.key_problem(key)
        if key_problem:
            self.report(field, f"tag key {_show(key)} {key_problem}", _tag_key_hint())
            return False
        if not isinstance(value, str):
            hint = 'tag values are strings: put the value in quotes, e.g. "12"'
            self.report(field, f"tag {_show(key)}: {_show(value)} is not a string", hint)
            return False
        value_problem = s3tags.value_problem(value)
        if value_problem:
            hint = f"tag values use {s3tags.ALLOWED_CHARS_HINT}"
            self.report(field, f"tag {_show(key)}: value {_show(value)} {value_problem}", hint)
            return False
        return True

    def metadata_size(self, job_id: str, image: str, mask: str | None) -> None:
        size = sum(_header_bytes(text) for text in (job_id, image, mask or ""))
        size += METADATA_OVERHEAD_BYTES
        if size > S3_METADATA_LIMIT_BYTES:
            message = f"the output's metadata would take about {size} bytes"
            hint = (
                f"S3 allows {S3_METADATA_LIMIT_BYTES}: shorten the image and mask paths or the id"
            )
            self.report("", message, hint)

    def output(
        self,
        output: str | None,
        bucket: str | None,
        job_id: str,
        image: str,
        params: EditParams | None,
    ) -> S3Uri | None:
        output_format = params.output_format if params else EditParams.output_format
        template_bucket = _template_bucket(output)
        try:
            return resolve_output(
                output,
                bucket=bucket or template_bucket or PLACEHOLDER_BUCKET,
                batch_id=PLACEHOLDER_BATCH_ID,
                job_id=job_id,
                ext=EXTENSIONS[output_format],
                image=image,
            )
        except InputError as error:
            self.report("output" if output is not None else "id", str(error), TEMPLATE_HINT)
            return None

    def unique_output(self, uri: str, seen_outputs: dict[str, int]) -> None:
        first = seen_outputs.setdefault(uri, self.line)
        if first != self.line:
            message = f"{_cut(uri)} is also the output of line {first}"
            self.report("output", message, "put {id} in the output template")


def _as_text(value: object, fmt: ManifestFormat) -> str:
    if not isinstance(value, str):
        raise _Bad(f"{_show(value)} is not a string", "put the value in double quotes")
    if _has_surrogates(value):
        raise _Bad("has invalid unicode (a lone surrogate)", "save the manifest as UTF-8")
    return value


def _as_number(value: object, fmt: ManifestFormat) -> float:
    if fmt == "csv" and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise _Bad(f"{_show(value)} is not a number", "write a number such as 1.5") from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        hint = "write a JSON number such as 1.5, without quotes"
        raise _Bad(f"{_show(value)} is not a number", hint)
    return value


def _as_integer(value: object, fmt: ManifestFormat) -> int:
    if fmt == "csv" and isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    number = _as_number(value, fmt)
    if isinstance(number, int):
        return number
    if number.is_integer():
        return int(number)
    raise _Bad(f"{_show(value)} is not a whole number", "write a whole number such as 20")


def _as_bool(value: object, fmt: ManifestFormat) -> bool:
    if fmt == "csv" and isinstance(value, str) and value.strip().lower() in BOOL_WORDS:
        return BOOL_WORDS[value.strip().lower()]
    if isinstance(value, bool):
        return value
    hint = "write true or false" + (" (or yes/no, 1/0)" if fmt == "csv" else ", without quotes")
    raise _Bad(f"{_show(value)} is not true or false", hint)


def _as_format(value: object, fmt: ManifestFormat) -> OutputFormat:
    if value not in OUTPUT_FORMATS:
        raise _Bad(f"{_show(value)} is not an output format", "use jpeg or png")
    return value


def _ranged(parse: _Parser[_N], limits: Range, kind: str) -> _Parser[_N]:
    def parse_in_range(value: object, fmt: ManifestFormat) -> _N:
        number = parse(value, fmt)
        if number not in limits:
            low, high = _plain(limits.low), _plain(limits.high)
            message = f"{_plain(number)} is out of range {low}{RANGE_DASH}{high}"
            raise _Bad(message, f"use {kind} from {low} to {high}")
        return number

    return parse_in_range


def _check_id(job_id: str) -> None:
    if not job_id:
        raise _Bad("is empty", "leave id out to number rows, or give a name")
    if len(job_id) > MAX_ID_CHARS:
        raise _Bad(f"is {len(job_id)} characters long", f"keep ids to {MAX_ID_CHARS} characters")
    if any(unicodedata.category(ch) == "Cc" for ch in job_id):
        raise _Bad(f"{_show(job_id)} has control characters", "remove tabs and line breaks")
    problem = s3tags.value_problem(job_id)
    if problem:
        hint = f"ids become S3 tag values: use {s3tags.ALLOWED_CHARS_HINT}"
        raise _Bad(f"{_show(job_id)} {problem}", hint)


def _check_location(value: str) -> None:
    if not value.strip():
        raise _Bad("is empty", "give an s3://bucket/key URI or a local path, or leave it out")
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        raise _Bad(f"{_show(value)} has control characters", "remove tabs and line breaks")
    if value.startswith(S3_SCHEME):
        try:
            uri = S3Uri.parse(value)
        except InputError as error:
            raise _Bad(str(error), "write s3://bucket/key") from None
        if uri.key.endswith("/"):
            raise _Bad(f"{_show(value)} names a folder, not an object", "name one image file")
    elif "://" in value:
        hint = "use s3://bucket/key (lower-case s3) or a path on this machine"
        raise _Bad(f"{_show(value)} is neither an s3:// URI nor a local path", hint)


def _template_bucket(output: str | None) -> str | None:
    if output is None or not output.startswith(S3_SCHEME):
        return None
    return output[len(S3_SCHEME) :].partition("/")[0] or None


def _header_bytes(text: str) -> int:
    """How long `text` is as S3 metadata, non-ASCII percent-encoded (`pipeline.storage`)."""
    if text.isascii():
        return len(text)
    return len(quote(text.encode("utf-8", "surrogatepass"), safe="/:@!$&'()*+,;=-._~ "))


def _has_surrogates(text: str) -> bool:
    return any("\ud800" <= ch <= "\udfff" for ch in text)


def _plain(number: float) -> str:
    if isinstance(number, int) or (isinstance(number, float) and number.is_integer()):
        return str(int(number))
    return repr(number)


def _show(value: object) -> str:
    """A value for a message: quoted if text, cut to a readable length."""
    text = repr(value) if isinstance(value, str) else json.dumps(value, default=str)
    return _cut(text)


def _cut(text: str) -> str:
    return text if len(text) <= MAX_SHOWN_CHARS else text[: MAX_SHOWN_CHARS - 1] + "…"


def _json_type(value: object) -> str:
    names = {list: "an array", str: "a string", bool: "true/false", type(None): "null"}
    return names.get(type(value), "a number")


def _known_hint(name: str = "") -> str:
    close = difflib.get_close_matches(name, KNOWN_FIELDS, n=1) if name else []
    known = "known fields: " + ", ".join(KNOWN_FIELDS)
    return (f"did you mean {close[0]!r}? " if close else "") + known


def _tag_key_hint() -> str:
    return (
        f"tag keys have 1{RANGE_DASH}{s3tags.MAX_KEY_CHARS} of {s3tags.ALLOWED_CHARS_HINT}, "
        "and may not start with aws: or fillpipe-"
    )
