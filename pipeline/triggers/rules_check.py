"""Reading a rules file: TOML parsed, every rule checked, every problem listed at once
(`RulesInvalid`) with its line and field (`retouch.output`, or `rules[2].prompt` for a rule
without a usable name). Values are checked by the manifests' own parsers and ranges."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from pipeline.errors import Problem, RulesInvalid
from pipeline.triggers.rules import RuleSet
from pipeline.triggers.rules_fields import RuleCheck
from pipeline.triggers.rules_lines import RuleLines, toml_error

TOML_HINT = 'fix the TOML there: strings in double quotes, one key = "value" per line'
RULES_HINT = "write each rule as a [[rules]] table with name, bucket, output, prompt, finetune_id"


def load_rules(path: str | Path) -> RuleSet:
    """The rules of a file; `RulesInvalid` listing every problem (a missing file is one)."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise _unreadable(source, "the rules file does not exist", "check the path") from None
    except IsADirectoryError:
        raise _unreadable(source, "is a folder, not a rules file", "name the file") from None
    except UnicodeDecodeError:
        raise _unreadable(source, "is not UTF-8 text", "save the rules file as UTF-8") from None
    except OSError as error:
        message = f"cannot be read: {error.strerror or error}"
        raise _unreadable(source, message, "check the file's permissions") from None
    return parse_rules(text, source=source)


def _unreadable(source: str, message: str, hint: str) -> RulesInvalid:
    return RulesInvalid([Problem(source, 0, "", message, hint)])


def parse_rules(text: str, *, source: str) -> RuleSet:
    """The rules of a file's text; `RulesInvalid` listing every problem."""
    text = text.removeprefix("\ufeff")
    problems: list[Problem] = []
    lines = RuleLines(text)
    names: dict[str, int] = {}
    rules = []
    for index, table in _tables(text, source, lines, problems):
        rule = RuleCheck(source, index, table, lines, problems).rule(names)
        if rule is not None:
            rules.append(rule)
    if problems:
        raise RulesInvalid(sorted(problems, key=lambda problem: problem.line))
    return RuleSet(source, tuple(rules))


def _tables(
    text: str, source: str, lines: RuleLines, problems: list[Problem]
) -> list[tuple[int, dict[str, object]]]:
    """The file's `[[rules]]` tables with their positions; what is not one, a problem."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        message, line = toml_error(error, text)
        problems.append(Problem(source, line, "", f"not valid TOML: {message}", TOML_HINT))
        return []
    for key in document:
        if key != "rules":
            line = lines.key_line(key, 1, None) or _table_line(text, key)
            hint = "a rules file holds only [[rules]] tables"
            problems.append(Problem(source, line, key, f"unknown top-level key {key!r}", hint))
    raw = document.get("rules")
    if not raw:
        problems.append(Problem(source, 1, "", "the file has no rules", RULES_HINT))
        return []
    if not isinstance(raw, list):
        line = lines.key_line("rules", 1, None) or _table_line(text, "rules")
        problems.append(Problem(source, line, "rules", "is a single table", RULES_HINT))
        return []
    tables = [(index, item) for index, item in enumerate(raw) if isinstance(item, dict)]
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            line = lines.rule_line(index)
            message = f"is {type(item).__name__} {item!r}, not a table"
            problems.append(Problem(source, line, f"rules[{index + 1}]", message, RULES_HINT))
    return tables


def _table_line(text: str, key: str) -> int:
    """The line of a `[key]` or `[key.x]` table header, else 1."""
    header = re.compile(rf"^\s*\[\s*{re.escape(key)}\s*[\].]", re.MULTILINE)
    found = header.search(text)
    return text.count("\n", 0, found.start()) + 1 if found else 1
