"""Checks of a rule by the keys it would meet: a few sample images run through its
matching, mask and output, so that a rule whose outputs would be folders, overwrite their
images or hide them as masks is refused before any object arrives."""

from __future__ import annotations

import re
import string
from collections.abc import Callable

from pipeline.errors import InputError
from pipeline.models import EXTENSIONS, EditParams
from pipeline.storage import S3Uri
from pipeline.triggers.rules import Rule, resolve, split_template

TEMPLATE_HINT = (
    "write s3://BUCKET/key or a key in the rule's bucket, using only {key} {dir} {stem} {ext}"
)
# Image extensions and the output format that writes files of each.
FORMAT_OF_EXTENSION = {"jpg": "jpeg", "jpeg": "jpeg", "png": "png"}
SAMPLE_STEM = "photo"
SAMPLE_FOLDERS = ("", "sub folder/\u00fc+/")
_EXTENSION = re.compile(r"[A-Za-z0-9]+")

Report = Callable[[str, str, str], None]


def check_samples(rule: Rule, report: Report, bad: set[str]) -> None:
    """Report what sample images of `rule` reveal; checks that rest on fields already
    reported as `bad` are skipped."""
    images = sample_images(rule)
    if "output" not in bad:
        _check_outputs(rule, images, report)
    if not bad & {"mask", "mask_prefix"}:
        _check_masks(rule, images, report)
    if not bad & {"output", "suffix", "glob", "output_format"}:
        _check_extension(rule, report)


def sample_images(rule: Rule) -> list[str]:
    """Keys the rule matches, directly under its prefix and in folders below it."""
    names = [SAMPLE_STEM + (".png" if rule.suffix is None else rule.suffix)]
    if rule.glob is not None and "[" not in rule.glob:
        glob = rule.glob.replace("**/", "").replace("**", SAMPLE_STEM)
        names.append(glob.replace("*", SAMPLE_STEM).replace("?", "x"))
    keys = [rule.prefix + folder + name for folder in SAMPLE_FOLDERS for name in names]
    return [key for key in dict.fromkeys(keys) if rule.matches(rule.bucket, key)]


def _check_outputs(rule: Rule, images: list[str], report: Report) -> None:
    for image in images:
        try:
            output = resolve(rule.output, rule.bucket, image, "output")
        except InputError as error:
            report("output", f"for an image {image!r}: {error}", TEMPLATE_HINT)
            return
        if output == S3Uri(rule.bucket, image):
            message = f"the output of an image {image!r} would be the image itself"
            report("output", message, "put outputs in another folder or under another name")
            return
        if rule.is_output(rule.bucket, image):
            message = f"images like {image!r} would count as the rule's outputs and make no job"
            report("output", message, "put outputs in a folder or under names images do not have")
            return


def _check_masks(rule: Rule, images: list[str], report: Report) -> None:
    field = "mask" if rule.mask_prefix is None else "mask_prefix"
    for image in images:
        if rule.is_mask(rule.bucket, image):
            message = f"images like {image!r} would count as masks and make no job"
            hint = "put masks in a folder or under names images do not have"
            report(field, message, hint)
            return
        try:
            rule.mask_uri(image)
        except InputError as error:
            report(field, f"for an image {image!r}: {error}", TEMPLATE_HINT)
            return


def _check_extension(rule: Rule, report: Report) -> None:
    """An output named with the images' `{ext}` must hold what output_format makes."""
    _, key_template = split_template(rule.output, rule.bucket)
    ext = pattern_extension(rule)
    if ext is None or "ext" not in _placeholders(key_template):
        return
    fmt = rule.params.output_format
    if FORMAT_OF_EXTENSION.get(ext.lower()) == fmt:
        return
    message = f"{{ext}} names the outputs .{ext} but output_format {fmt!r} makes them "
    message += f"{fmt.upper()} images"
    hint = f"write the extension literally (.{EXTENSIONS[fmt]})"
    if ext.lower() in FORMAT_OF_EXTENSION:
        hint += f' or set output_format = "{FORMAT_OF_EXTENSION[ext.lower()]}"'
    hint += f"; output_format is {EditParams.output_format} unless set"
    report("output", message, hint)


def pattern_extension(rule: Rule) -> str | None:
    """The extension every image of the rule has, when its suffix or glob says one."""
    pattern = rule.suffix if rule.suffix is not None else rule.glob
    if pattern is None or "." not in pattern:
        return None
    ext = pattern.rpartition(".")[2]
    return ext if _EXTENSION.fullmatch(ext) else None


def _placeholders(template: str) -> set[str]:
    try:
        return {name for _, name, _, _ in string.Formatter().parse(template) if name}
    except ValueError:
        return set()
