"""Validating a manifest: every record checked field by field, every problem reported.

Memory grows only with what must be unique (ids, and outputs of templates without
`{id}`) and the problems found.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar, cast
from urllib.parse import quote

from pipeline import tags as s3tags
from pipeline.errors import BadValue, InputError, ManifestInvalid, Problem
from pipeline.manifest.fields import (
    KNOWN_FIELDS,
    TAG_COLUMN_PREFIX,
    ManifestFormat,
    Parser,
    as_text,
    check_id,
    check_location,
    composite_choice,
    edit_params,
    known_hint,
    tag_key_hint,
)
from pipeline.manifest.problems import cut, show
from pipeline.manifest.reading import read_records
from pipeline.models import (
    EXTENSIONS,
    CompositeChoice,
    EditParams,
)
from pipeline.storage import S3_SCHEME, S3Uri
from pipeline.templates import TEMPLATE_HINT, resolve_output

S3_METADATA_LIMIT_BYTES = 2048
# Batch id, attempt, task id, prompt hash, seed, cost and the metadata names themselves.
METADATA_OVERHEAD_BYTES = 300
# Shaped like `pipeline.batches.new_batch_id`: checks templates before the batch exists.
PLACEHOLDER_BATCH_ID = "b20260101-00000000"
PLACEHOLDER_BUCKET = "fillpipe"
_V = TypeVar("_V")
_D = TypeVar("_D")


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
    # The provider account the row names; None: decided by its finetune, else the default.
    account: str | None = None
    # How its output is made from the provider's result; what it leaves out: the default.
    composite: CompositeChoice = field(default_factory=CompositeChoice)


def validate_rows(
    lines: Iterable[str],
    *,
    source: str,
    fmt: ManifestFormat,
    bucket: str | None = None,
    accounts: Collection[str] | None = None,
) -> Iterator[ManifestRow]:
    """Yield every valid row lazily; after the last, raise `ManifestInvalid` if any problem.

    `bucket` is the batch's bucket: output URIs naming another one are refused. Without it,
    only the templates' form is checked. `accounts` are the configured provider accounts
    a row may name (None: any name).
    """
    problems: list[Problem] = []
    seen = _Seen()
    count = 0
    for line, record in read_records(lines, source=source, fmt=fmt, problems=problems):
        count += 1
        check = _RowCheck(source, line, fmt, record, problems)
        row = check.row(str(count), seen, bucket, accounts)
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

    def get(self, name: str, parse: Parser[_V], default: _D) -> _V | _D:
        raw = self.value(name)
        if raw is None:
            return default
        try:
            return parse(raw, self.fmt)
        except BadValue as bad:
            self.report(name, bad.message, bad.hint)
            return default

    def required_text(self, name: str) -> str:
        hint = f"give every row a value for {name}"
        if self.value(name) is None:
            self.report(name, "is required", hint)
            return ""
        text = self.get(name, as_text, "")
        if isinstance(self.value(name), str) and not text.strip():
            self.report(name, "is empty", hint)
            return ""
        return text

    def row(
        self, row_number: str, seen: _Seen, bucket: str | None, accounts: Collection[str] | None
    ) -> ManifestRow | None:
        self.unknown_fields()
        job_id = self.job_id(row_number, seen.ids)
        image = self.required_text("image")
        image = self.location("image", image) if image else image
        mask = self.get("mask", as_text, None)
        mask = self.location("mask", mask) if mask is not None else mask
        params = self.params()
        output = self.get("output", as_text, None)
        tags = self.tags()
        account = self.account(accounts)
        composite = composite_choice(self.get)
        self.metadata_size(job_id, image, mask)
        uri = self.output(output, bucket, job_id, image, params)
        if uri is not None and output is not None and "{id}" not in output:
            self.unique_output(str(uri), seen.outputs)
        if not self.ok or params is None:
            return None
        return ManifestRow(self.line, job_id, image, mask, params, output, tags, account, composite)

    def account(self, accounts: Collection[str] | None) -> str | None:
        name = self.get("account", as_text, None)
        if name is not None and accounts is not None and name not in accounts:
            self.report(
                "account",
                f"no provider account named {show(name)}",
                f"name one of {', '.join(accounts)} (FILLPIPE_ACCOUNTS_FILE), or leave it out",
            )
        return name

    def unknown_fields(self) -> None:
        for name in self.record:
            if name not in KNOWN_FIELDS:
                self.report(name, f"unknown field {show(name)}", known_hint(name))

    def job_id(self, row_number: str, seen_ids: dict[str, int]) -> str:
        job_id = self.get("id", as_text, row_number)
        try:
            check_id(job_id)
        except BadValue as bad:
            self.report("id", bad.message, bad.hint)
        first = seen_ids.setdefault(job_id, self.line)
        if first != self.line:
            message = f"id {show(job_id)} is already used on line {first}"
            self.report("id", message, "give every row its own id")
        return job_id

    def location(self, name: str, value: str) -> str:
        try:
            check_location(value)
        except BadValue as bad:
            self.report(name, bad.message, bad.hint)
        return value

    def params(self) -> EditParams | None:
        prompt = self.required_text("prompt")
        finetune_id = self.required_text("finetune_id")
        if finetune_id:
            self.finetune_id(finetune_id)
        params = edit_params(self.get, prompt, finetune_id)
        return params if prompt and finetune_id else None

    def finetune_id(self, finetune_id: str) -> None:
        problem = s3tags.value_problem(finetune_id)
        if problem:
            hint = f"finetune ids become S3 tag values: {s3tags.ALLOWED_CHARS_HINT}"
            self.report("finetune_id", f"{show(finetune_id)} {problem}", hint)

    def tags(self) -> dict[str, str]:
        raw = self.value("tags")
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            self.report("tags", f"{show(raw)} is not an object", 'write {"key": "value", …}')
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
            self.report(field, f"tag key {show(key)} {key_problem}", tag_key_hint())
            return False
        if not isinstance(value, str):
            hint = 'tag values are strings: put the value in quotes, e.g. "12"'
            self.report(field, f"tag {show(key)}: {show(value)} is not a string", hint)
            return False
        value_problem = s3tags.value_problem(value)
        if value_problem:
            hint = f"tag values use {s3tags.ALLOWED_CHARS_HINT}"
            self.report(field, f"tag {show(key)}: value {show(value)} {value_problem}", hint)
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
            message = f"{cut(uri)} is also the output of line {first}"
            self.report("output", message, "put {id} in the output template")


def _template_bucket(output: str | None) -> str | None:
    if output is None or not output.startswith(S3_SCHEME):
        return None
    return output[len(S3_SCHEME) :].partition("/")[0] or None


def _header_bytes(text: str) -> int:
    """How long `text` is as S3 metadata, non-ASCII percent-encoded (`pipeline.storage`)."""
    if text.isascii():
        return len(text)
    return len(quote(text.encode("utf-8", "surrogatepass"), safe="/:@!$&'()*+,;=-._~ "))
