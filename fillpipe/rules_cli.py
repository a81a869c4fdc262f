"""`fillpipe rules`: the trigger rules that turn objects landing in a bucket into jobs."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from fillpipe.output import columns, data, say
from pipeline.errors import InputError
from pipeline.storage import S3_SCHEME
from pipeline.triggers.rules import Rule, load_rules

EXIT_BAD_INPUT = 2


@click.group()
def rules() -> None:
    """Trigger rules: which objects landing in S3 become edit jobs (a TOML file)."""


@rules.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def check(file: Path) -> None:
    """Check a rules file offline: nothing is read from S3 or sent to the provider.

    Prints one line per rule on stdout: its name, where it watches (s3://bucket/prefix),
    which keys it takes (suffix=, glob= or all), where masks are (mask=TEMPLATE,
    mask=alpha or mask_prefix=PREFIX) and where outputs go. If anything is wrong, every
    problem is listed on stderr with its line and field, and the exit code is 2.
    """
    try:
        ruleset = load_rules(file)
    except InputError as error:
        say(f"fillpipe: {error}")
        sys.exit(EXIT_BAD_INPUT)
    for line in columns(rule_row(rule) for rule in ruleset.rules):
        data(line)
    count = len(ruleset.rules)
    say(f"{file}: {count} rule{'' if count == 1 else 's'} valid")


def rule_row(rule: Rule) -> tuple[str, str, str, str, str]:
    """A rule as `rules check` shows it: name, place, pattern, masks, output."""
    if rule.suffix is not None:
        pattern = f"suffix={rule.suffix}"
    else:
        pattern = "all" if rule.glob is None else f"glob={rule.glob}"
    if rule.mask_prefix is not None:
        masks = f"mask_prefix={rule.mask_prefix}"
    else:
        masks = f"mask={rule.mask or 'alpha'}"
    output = rule.output
    if not output.startswith(S3_SCHEME):
        output = f"{S3_SCHEME}{rule.bucket}/{output}"
    return rule.name, f"{S3_SCHEME}{rule.bucket}/{rule.prefix}", pattern, masks, output
