"""Trigger rules: which objects landing in a bucket become edit jobs, with which mask,
parameters and output.

A rules file is TOML, one `[[rules]]` table per rule:

    [[rules]]
    name = "retouch"                       # unique, [A-Za-z0-9_-]{1,40}
    bucket = "fillpipe"
    prefix = "incoming/"                   # default "": the whole bucket
    suffix = ".png"                        # or glob = "**/*.png"; neither: every key
    mask = "{dir}/{stem}.mask.png"         # the default; or "alpha", or mask_prefix = "masks/"
    output = "s3://fillpipe/incoming/edited/{stem}.{ext}"
    prompt = "a glossy studio finish"      # and finetune_id, and the manifests' optional
    finetune_id = "my-brand"               # provider parameters, with their ranges
    tags = { campaign = "spring" }         # extra S3 tags of the outputs
    notify = "https://hooks.example.com/fillpipe"   # optional: a signed job.finished POST
                                           # as each job ends (see `pipeline.notify`)

Matching. `suffix` is compared with the end of the key, case-sensitively as S3's own
notification filters do. `glob` is matched against the key with the prefix removed: `*`
and `?` never cross a `/`, `**/` stands for any number of folders (none included), and
`[...]` is a set of characters as in fnmatch; so "*.png" takes only the prefix's own
files and "**/*.png" those of every folder below it too. Keys ending in "/" (folder
markers) are never images.

Templates (of masks and outputs) are key templates in the rule's bucket or
`s3://bucket/key-template`, filled from the image's key: `{key}` the whole key, `{dir}` its
folder without the trailing slash ("" at the bucket's root), `{stem}` its file name without
the extension, `{ext}` the extension without the dot ("" when the name has none). A filled
key loses one leading "/", so "{dir}/{stem}.mask.png" puts the mask of "a.png" at
"a.mask.png".

Masks never make jobs: a key where a rule's convention puts some image's mask (the mask
template read as a pattern, or anything under `mask_prefix`) is not one of its images.
Nor does a rule take its own outputs (the output template read as a pattern), so an output
inside the rule's own prefix makes no new job. Every rule that wants an object makes its
own job: overlapping rules each make one.

Reading and checking a rules file is `pipeline.triggers.rules_check`.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from pipeline.errors import InputError
from pipeline.models import CompositeChoice, EditParams
from pipeline.storage import S3_SCHEME, S3Uri
from pipeline.templates import check_key, fill

ALPHA_MASK = "alpha"
DEFAULT_MASK_TEMPLATE = "{dir}/{stem}.mask.png"
KEY_PLACEHOLDERS = ("key", "dir", "stem", "ext")
# What each placeholder can stand for, when a template is read as a pattern.
_PLACEHOLDER_PATTERNS = {"key": ".*", "dir": ".*", "stem": "[^/]*", "ext": "[^/.]*"}
_CLASS_SPECIALS = str.maketrans({ch: "\\" + ch for ch in "\\[]^&~|"})


@dataclass(frozen=True)
class Rule:
    """One validated rule of a rules file (see the module's documentation)."""

    name: str
    bucket: str
    prefix: str
    suffix: str | None
    glob: str | None
    mask: str | None  # template; None for the image's alpha channel (or with mask_prefix)
    mask_prefix: str | None
    output: str  # template
    params: EditParams
    tags: dict[str, str]
    line: int
    # The provider account its jobs run on; None: decided by the finetune, else the default.
    account: str | None = None
    # Where each of its jobs is notified as it ends (`pipeline.notify`); None: nowhere.
    notify: str | None = None
    # How its outputs are made from the provider's results; what it leaves out: the default.
    composite: CompositeChoice = field(default_factory=CompositeChoice)

    def wants(self, bucket: str, key: str) -> bool:
        """The key is one of this rule's images: bucket, prefix, suffix/glob match, and it
        is neither a mask by this rule's convention (a mask never makes a job) nor where
        this rule puts its outputs."""
        return (
            self.matches(bucket, key)
            and not self.is_mask(bucket, key)
            and not self.is_output(bucket, key)
        )

    def matches(self, bucket: str, key: str) -> bool:
        """The key is in the rule's bucket and prefix and fits its suffix or glob."""
        if bucket != self.bucket or not key.startswith(self.prefix) or key.endswith("/"):
            return False
        if self.suffix is not None:
            return key.endswith(self.suffix)
        if self.glob is not None:
            return glob_regex(self.glob).fullmatch(key[len(self.prefix) :]) is not None
        return True

    def is_mask(self, bucket: str, key: str) -> bool:
        """The key is where this rule's convention puts some image's mask (a template read
        as a pattern: {dir} any folder incl. none, {stem} one file name part, {ext} an
        extension, {key} anything; a mask prefix: anything under it)."""
        if self.mask_prefix is not None:
            return bucket == self.bucket and key.startswith(self.mask_prefix)
        if self.mask is None:
            return False
        mask_bucket, template = split_template(self.mask, self.bucket)
        return bucket == mask_bucket and template_matches(template, key)

    def is_output(self, bucket: str, key: str) -> bool:
        """The key is where this rule's output template puts some image's output."""
        output_bucket, template = split_template(self.output, self.bucket)
        return bucket == output_bucket and template_matches(template, key)

    def mask_uri(self, key: str) -> str | None:
        """`s3://bucket/key` of the image's mask; None when the mask is its alpha channel."""
        if self.mask_prefix is not None:
            mask_key = self.mask_prefix + key.removeprefix(self.prefix)
            return str(S3Uri(self.bucket, _checked(mask_key, "mask")))
        if self.mask is None:
            return None
        return str(resolve(self.mask, self.bucket, key, "mask"))

    def output_uri(self, key: str) -> str:
        """`s3://bucket/key` of the image's output; `InputError` if that key is unusable."""
        return str(resolve(self.output, self.bucket, key, "output"))


@dataclass(frozen=True)
class RuleSet:
    """The rules of one file, in the file's order."""

    source: str
    rules: tuple[Rule, ...]

    def for_object(self, bucket: str, key: str) -> list[Rule]:
        """Every rule that wants the object; each makes its own job."""
        return [rule for rule in self.rules if rule.wants(bucket, key)]

    def is_mask(self, bucket: str, key: str) -> bool:
        """The object is a mask by some rule's convention."""
        return any(rule.is_mask(bucket, key) for rule in self.rules)

    def watched(self) -> list[tuple[str, str]]:
        """The (bucket, prefix) pairs a listing poller must list to see every image and
        mask: the rules' prefixes and their masks' places, none inside another."""
        places = {(rule.bucket, rule.prefix) for rule in self.rules}
        places |= {place for rule in self.rules if (place := mask_place(rule))}
        return sorted(
            (bucket, prefix)
            for bucket, prefix in places
            if not any(b == bucket and p != prefix and prefix.startswith(p) for b, p in places)
        )


def load_rules(path: str | Path) -> RuleSet:
    """The rules of a file; `RulesInvalid` listing every problem (a missing file is one)."""
    from pipeline.triggers.rules_check import load_rules as load  # it builds `Rule`s

    return load(path)


def parse_rules(text: str, *, source: str) -> RuleSet:
    """The rules of a file's text; `RulesInvalid` listing every problem."""
    from pipeline.triggers.rules_check import parse_rules as parse  # it builds `Rule`s

    return parse(text, source=source)


def key_values(key: str) -> dict[str, str]:
    """The template values of an image's key: {key}, {dir}, {stem}, {ext}."""
    folder, _, name = key.rpartition("/")
    dot = name.rfind(".")
    stem, ext = (name[:dot], name[dot + 1 :]) if dot > 0 else (name, "")
    return {"key": key, "dir": folder, "stem": stem, "ext": ext}


def split_template(template: str, bucket: str) -> tuple[str, str]:
    """The bucket and key template of `s3://bucket/key-template`, or of a key template
    in `bucket`."""
    if template.startswith(S3_SCHEME):
        template_bucket, _, key_template = template[len(S3_SCHEME) :].partition("/")
        return template_bucket, key_template
    return bucket, template


def fill_key(key_template: str, key: str) -> str:
    """The key template filled for the image `key`, less one leading "/"."""
    filled = fill(key_template, key_values(key))
    return filled.removeprefix("/")


def resolve(template: str, bucket: str, key: str, what: str) -> S3Uri:
    """Where `template` puts the `what` ("mask", "output") of the image `key`; `InputError`
    when the filled key is unusable (empty, a folder, a `..` segment, too long)."""
    target_bucket, key_template = split_template(template, bucket)
    return S3Uri(target_bucket, _checked(fill_key(key_template, key), what))


def _checked(key: str, what: str) -> str:
    try:
        check_key(key)
    except InputError as error:
        raise InputError(str(error).replace("output key", f"{what} key", 1)) from None
    return key


def template_matches(key_template: str, key: str) -> bool:
    """`key` is what the key template gives for some image (one leading "/" dropped)."""
    pattern = template_regex(key_template)
    return bool(pattern.fullmatch(key) or pattern.fullmatch("/" + key))


@lru_cache(maxsize=256)
def template_regex(key_template: str) -> re.Pattern[str]:
    """The key template read as a pattern; each placeholder matches what it can hold."""
    pieces: list[str] = []
    for literal, name, _, _ in string.Formatter().parse(key_template):
        pieces.append(re.escape(literal))
        if name is not None:
            pieces.append(_PLACEHOLDER_PATTERNS.get(name, ".*"))
    return re.compile("".join(pieces), re.DOTALL)


@lru_cache(maxsize=256)
def glob_regex(glob: str) -> re.Pattern[str]:
    """The glob as a pattern: `*` and `?` within one folder, `**/` any folders, `[...]`."""
    pieces: list[str] = []
    at = 0
    while at < len(glob):
        if glob.startswith("**/", at):
            pieces.append("(?:.*/)?")
            at += 3
        elif glob.startswith("**", at):
            pieces.append(".*")
            at += 2
        elif glob[at] in "*?":
            pieces.append("[^/]*" if glob[at] == "*" else "[^/]")
            at += 1
        elif glob[at] == "[" and (end := _set_end(glob, at)) > 0:
            pieces.append(_char_set(glob[at + 1 : end]))
            at = end + 1
        else:
            pieces.append(re.escape(glob[at]))
            at += 1
    return re.compile("".join(pieces), re.DOTALL)


def _set_end(glob: str, start: int) -> int:
    """The index of the `]` closing the set opened at `start`; -1 if none (a literal `[`)."""
    at = start + 1
    if glob.startswith("!", at):
        at += 1
    if glob.startswith("]", at):
        at += 1
    return glob.find("]", at)


def _char_set(body: str) -> str:
    if body.startswith("!"):
        return "[^/" + body[1:].translate(_CLASS_SPECIALS) + "]"
    return "[" + body.translate(_CLASS_SPECIALS) + "]"


def mask_place(rule: Rule) -> tuple[str, str] | None:
    """The (bucket, prefix) under which the rule's masks lie; None for alpha masks."""
    if rule.mask_prefix is not None:
        return rule.bucket, rule.mask_prefix
    if rule.mask is None:
        return None
    bucket, key_template = split_template(rule.mask, rule.bucket)
    literal, name, _, _ = next(iter(string.Formatter().parse(key_template)), ("", None, "", ""))
    if bucket == rule.bucket and not literal and name == "key":
        return bucket, rule.prefix
    if bucket == rule.bucket and not literal and name == "dir":
        return bucket, rule.prefix[: rule.prefix.rfind("/") + 1]
    return bucket, (literal if name is not None else key_template).removeprefix("/")
