"""One rule's fields checked, each failure reported as a `Problem` at the field's line.

The provider parameters and tags go through the manifests' own parsers, ranges and tag
rules (`pipeline.manifest.fields`, `pipeline.models`, `pipeline.tags`); TOML values have
types, as JSON's do, so they are parsed as JSON Lines values are.
"""

from __future__ import annotations

import difflib
import re
from typing import TypeVar

from pipeline import tags as s3tags
from pipeline.errors import BadValue, InputError, Problem
from pipeline.manifest.fields import (
    COMPOSITE_FIELDS,
    PARAM_FIELDS,
    ManifestFormat,
    Parser,
    as_text,
    composite_choice,
    edit_params,
    tag_key_hint,
)
from pipeline.manifest.problems import show
from pipeline.models import EditParams
from pipeline.notify_target import url_problem
from pipeline.storage import S3_SCHEME
from pipeline.templates import fill
from pipeline.triggers.rules import ALPHA_MASK, DEFAULT_MASK_TEMPLATE, Rule, key_values
from pipeline.triggers.rules_lines import RuleLines
from pipeline.triggers.rules_samples import TEMPLATE_HINT, check_samples

RULE_FIELDS = (
    "name",
    "bucket",
    "prefix",
    "suffix",
    "glob",
    "mask",
    "mask_prefix",
    "output",
    "account",
    "notify",
)
KNOWN_FIELDS = (*RULE_FIELDS, *PARAM_FIELDS, *COMPOSITE_FIELDS, "tags")
NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,40}")
NAME_HINT = "use 1\u201340 letters, digits, _ and -"
BUCKET_HINT = (
    "S3 bucket names have 3\u201363 lower-case letters, digits, dots and hyphens, "
    "beginning and ending with a letter or digit"
)
# Shaped like the buckets users name; stands in for a rule's bucket that is missing or bad.
PLACEHOLDER_BUCKET = "fillpipe"
# TOML values have types, as JSON's do: the manifests' parsers read them as JSON values.
TOML: ManifestFormat = "jsonl"
_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_IP_ADDRESS = re.compile(r"\d+\.\d+\.\d+\.\d+")
_RESERVED_BUCKET_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_RESERVED_BUCKET_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
_V = TypeVar("_V")
_D = TypeVar("_D")


def bucket_problem(name: str) -> str | None:
    """Why `name` cannot be an S3 bucket's name, or None when it can."""
    if not _BUCKET_NAME.fullmatch(name):
        return "is not a valid S3 bucket name"
    if ".." in name:
        return "has two dots in a row"
    if _IP_ADDRESS.fullmatch(name):
        return "is shaped like an IP address"
    if name.startswith(_RESERVED_BUCKET_PREFIXES) or name.endswith(_RESERVED_BUCKET_SUFFIXES):
        return "uses a prefix or suffix S3 reserves"
    return None


def known_hint(name: str) -> str:
    """The known fields of a rule, led by the closest one to a misspelt `name`."""
    close = difflib.get_close_matches(name, KNOWN_FIELDS, n=1)
    return (
        (f"did you mean {close[0]!r}? " if close else "")
        + "known fields: "
        + (", ".join(KNOWN_FIELDS))
    )


class RuleCheck:
    """Checks one `[[rules]]` table, reporting each failure as a `Problem`."""

    def __init__(
        self,
        source: str,
        index: int,
        table: dict[str, object],
        lines: RuleLines,
        sink: list[Problem],
    ) -> None:
        self.source, self.index, self.table = source, index, table
        self.lines, self.sink = lines, sink
        name = table.get("name")
        usable = isinstance(name, str) and NAME_PATTERN.fullmatch(name)
        # Problems name the rule by its name when it has a usable one, else its position.
        self.label = str(name) if usable else f"rules[{index + 1}]"
        self.bad: set[str] = set()

    def report(self, field: str, message: str, hint: str) -> None:
        line = self.lines.field_line(self.index, field)
        where = f"{self.label}.{field}" if field else self.label
        self.sink.append(Problem(self.source, line, where, message, hint.replace("JSON ", "")))
        self.bad.add(field)

    def get(self, name: str, parse: Parser[_V], default: _D) -> _V | _D:
        raw = self.table.get(name)
        if raw is None:
            return default
        try:
            return parse(raw, TOML)
        except BadValue as bad:
            self.report(name, bad.message, bad.hint)
            return default

    def optional(self, name: str, hint: str) -> str | None:
        """An optional text that may not be empty."""
        value = self.get(name, as_text, None)
        if value is not None and not value.strip():
            self.report(name, "is empty", hint)
            return None
        return value

    def required(self, name: str, hint: str) -> str:
        if name not in self.table:
            self.report(name, "is required", hint)
            return ""
        value = self.get(name, as_text, "")
        if isinstance(self.table[name], str) and not value.strip():
            self.report(name, "is empty", hint)
            return ""
        return value

    def rule(self, names: dict[str, int]) -> Rule | None:
        """The rule, or None after reporting its problems; `names` maps the names seen so
        far to their rules' positions."""
        for field in self.table:
            if field not in KNOWN_FIELDS:
                self.report(field, f"unknown field {show(field)}", known_hint(field))
        name = self.name(names)
        bucket = self.bucket()
        prefix = self.get("prefix", as_text, "")
        suffix, glob = self.pattern()
        mask, mask_prefix = self.masks()
        output = self.required("output", 'say where outputs go, e.g. "edited/{stem}.{ext}"')
        if output:
            self.template("output", output)
        params = self.params()
        tags = self.tags()
        line = self.lines.rule_line(self.index)
        rule = Rule(
            name,
            bucket or PLACEHOLDER_BUCKET,
            prefix,
            suffix,
            glob,
            mask,
            mask_prefix,
            output,
            params,
            tags,
            line,
            self.get("account", as_text, None),
            self.notify(),
            composite_choice(self.get),
        )
        check_samples(rule, self.report, self.bad)
        return None if self.bad else rule

    def notify(self) -> str | None:
        """The URL each job is notified at as it ends: http(s), with a host."""
        url = self.optional("notify", "leave notify out, or give an https:// URL")
        problem = url_problem(url) if url is not None else None
        if problem:
            self.report("notify", problem, 'e.g. notify = "https://hooks.example.com/fillpipe"')
        return url

    def name(self, names: dict[str, int]) -> str:
        name = self.required("name", "give every rule a name: " + NAME_HINT)
        if name and not NAME_PATTERN.fullmatch(name):
            self.report("name", f"{show(name)} is not a usable rule name", NAME_HINT)
        elif name:
            first = names.setdefault(name, self.index)
            if first != self.index:
                message = f"{show(name)} is the name of the rule on line "
                message += str(self.lines.rule_line(first))
                self.report("name", message, "give every rule its own name")
        return name

    def bucket(self) -> str:
        bucket = self.required("bucket", "name the bucket the rule watches")
        problem = bucket_problem(bucket) if bucket else None
        if problem:
            self.report("bucket", f"{show(bucket)} {problem}", BUCKET_HINT)
        return bucket

    def pattern(self) -> tuple[str | None, str | None]:
        """The suffix or glob keys must match (neither: every key under the prefix)."""
        suffix = self.optional("suffix", "leave suffix out to take every key under the prefix")
        glob = self.optional("glob", "leave glob out to take every key under the prefix")
        if suffix is not None and glob is not None:
            hint = "keep one: suffix for how keys end, glob for a pattern"
            self.report("glob", "suffix and glob are both given", hint)
        return suffix, glob

    def masks(self) -> tuple[str | None, str | None]:
        """The mask template (None for alpha masks and with a prefix) and mask prefix."""
        mask = self.optional("mask", f'leave mask out for "{DEFAULT_MASK_TEMPLATE}"')
        mask_prefix = self.optional("mask_prefix", "leave mask_prefix out, or name a folder")
        template = DEFAULT_MASK_TEMPLATE if mask is None else mask
        if template != ALPHA_MASK:
            self.template("mask", template)
        if mask is not None and mask_prefix is not None:
            hint = "keep one: a mask template (or alpha), or the prefix masks are under"
            self.report("mask_prefix", "mask and mask_prefix are both given", hint)
            return None, None
        if mask_prefix is not None:
            return None, mask_prefix
        return (None if template == ALPHA_MASK else template), None

    def template(self, field: str, template: str) -> None:
        """A mask or output template: its bucket if it names one, its placeholders."""
        key_template = template
        if template.startswith(S3_SCHEME):
            bucket, _, key_template = template[len(S3_SCHEME) :].partition("/")
            problem = bucket_problem(bucket)
            if "{" in bucket or "}" in bucket:
                self.report(field, f"the bucket of {show(template)} is a template", TEMPLATE_HINT)
            elif problem:
                self.report(field, f"bucket {show(bucket)} {problem}", BUCKET_HINT)
            if not key_template:
                self.report(field, f"{show(template)} has no key after the bucket", TEMPLATE_HINT)
        elif "://" in template:
            message = f"{show(template)} is neither an s3:// URI nor a key template"
            self.report(field, message, "use s3://bucket/key (lower-case s3) or a key")
            return
        try:
            fill(key_template, key_values("incoming/photo.png"))
        except InputError as error:
            self.report(field, str(error).removeprefix("output "), TEMPLATE_HINT)

    def params(self) -> EditParams:
        """The provider parameters, as manifests have them (same ranges and defaults)."""
        prompt = self.required("prompt", "give every rule a prompt")
        finetune_id = self.required("finetune_id", "give every rule a finetune_id")
        problem = s3tags.value_problem(finetune_id) if finetune_id else None
        if problem:
            hint = f"finetune ids become S3 tag values: {s3tags.ALLOWED_CHARS_HINT}"
            self.report("finetune_id", f"{show(finetune_id)} {problem}", hint)
        return edit_params(self.get, prompt, finetune_id)

    def tags(self) -> dict[str, str]:
        """The extra S3 tags of the rule's outputs, by the manifests' tag rules."""
        raw = self.table.get("tags")
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            self.report("tags", f"{show(raw)} is not a table", 'write tags = { key = "value" }')
            return {}
        tags = {key: value for key, value in raw.items() if self.tag(key, value)}
        if len(raw) > s3tags.MAX_USER_TAGS:
            message = f"{len(raw)} tags, but S3 allows {s3tags.MAX_TAGS_PER_OBJECT} per object"
            hint = f"fillpipe sets {len(s3tags.OWN_TAG_KEYS)}: keep at most {s3tags.MAX_USER_TAGS}"
            self.report("tags", message, hint)
        return tags

    def tag(self, key: str, value: object) -> bool:
        key_problem = s3tags.key_problem(key)
        if key_problem:
            self.report("tags", f"tag key {show(key)} {key_problem}", tag_key_hint())
            return False
        if not isinstance(value, str):
            hint = 'tag values are strings: put the value in quotes, e.g. "12"'
            self.report("tags", f"tag {show(key)}: {show(value)} is not a string", hint)
            return False
        value_problem = s3tags.value_problem(value)
        if value_problem:
            hint = f"tag values use {s3tags.ALLOWED_CHARS_HINT}"
            self.report("tags", f"tag {show(key)}: value {show(value)} {value_problem}", hint)
            return False
        return True
