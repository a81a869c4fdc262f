"""Manifests: JSON Lines or CSV, read as a stream, every row checked, every problem listed.

Reading never stops at the first bad row: `validate_rows` yields the good rows as it goes
and, after the last one, raises `ManifestInvalid` listing every problem with its file, line
and field. Rows are trustworthy only once the iterator ends without raising. Memory grows
only with what must be unique (ids, and outputs of templates without `{id}`) and the
problems found.

    problems   `Problem`, `ManifestInvalid`, and how values are shown in messages
    fields     the known fields, and the parser and check of each value
    reading    JSON Lines and CSV lines as records (`detect_format`, `read_records`)
    rows       records checked into `ManifestRow`s (`validate_rows`)
"""

from pipeline.errors import ManifestInvalid, Problem
from pipeline.manifest.fields import ManifestFormat
from pipeline.manifest.reading import detect_format, read_records
from pipeline.manifest.rows import ManifestRow, validate_rows
from pipeline.templates import resolve_output

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
