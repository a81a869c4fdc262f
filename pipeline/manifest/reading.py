"""Reading a manifest's lines as records: JSON Lines or CSV, lazily, unreadable lines
listed as problems."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from pathlib import PurePosixPath

from pipeline import tags as s3tags
from pipeline.errors import InputError, ManifestInvalid, Problem
from pipeline.manifest.fields import (
    KNOWN_FIELDS,
    REQUIRED_FIELDS,
    TAG_COLUMN_PREFIX,
    ManifestFormat,
    known_hint,
    tag_key_hint,
)
from pipeline.manifest.problems import cut

FORMATS_BY_SUFFIX: dict[str, ManifestFormat] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".csv": "csv",
}
_CSV_QUOTING_HINT = (
    "put a cell holding commas, quotes or line breaks in double quotes, doubling inner quotes"
)


def detect_format(name: str) -> ManifestFormat:
    """The manifest's format, from the extension of its file name or s3:// key."""
    suffix = PurePosixPath(name.replace("\\", "/")).suffix.lower()
    if suffix in FORMATS_BY_SUFFIX:
        return FORMATS_BY_SUFFIX[suffix]
    raise InputError(
        f"cannot tell the format of manifest {name!r} from its extension: "
        "name it *.jsonl (or .ndjson, .json) for JSON Lines, *.csv for CSV"
    )


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
            sink.append(Problem(source, number, "", f"not valid JSON: {cut(str(error))}", hint))
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
        sink.append(Problem(source, 1, name, "required column is missing", known_hint()))
    return None if missing else columns


def _column_problem(name: str, position: int, seen: list[str | None]) -> tuple[str, str] | None:
    if not name:
        return f"column {position} has no name", "give every column a name in the header"
    if name in seen:
        return "column appears twice in the header", "keep one column of each name"
    if name.startswith(TAG_COLUMN_PREFIX):
        tag_problem = s3tags.key_problem(name.removeprefix(TAG_COLUMN_PREFIX))
        if tag_problem:
            return f"tag key {tag_problem}", tag_key_hint()
        return None
    if name == "tags":
        return "CSV manifests carry tags as columns", "name each tag column tag.<key>"
    if name not in KNOWN_FIELDS:
        return f"unknown column {name!r}", known_hint(name)
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


def _json_type(value: object) -> str:
    names = {list: "an array", str: "a string", bool: "true/false", type(None): "null"}
    return names.get(type(value), "a number")
