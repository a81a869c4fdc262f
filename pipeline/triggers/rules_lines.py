"""Where things are in a rules file's text: tomllib gives values without line numbers, so
problems find their lines here, by the `[[rules]]` headers and the `key =` lines of each
rule (lines inside multi-line strings skipped)."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator

_RULES_HEADER = re.compile(r"""\s*\[\[\s*(?:rules|"rules"|'rules')\s*\]\]\s*(?:#.*)?""")
_TOML_WHERE = re.compile(r"\s*\(at line (\d+), column \d+\)$")


class RuleLines:
    """The line numbers of a rules file's rules and of their fields."""

    def __init__(self, text: str) -> None:
        self.code = list(code_lines(text))
        self.headers = [number for number, line in self.code if _RULES_HEADER.fullmatch(line)]

    def rule_line(self, index: int) -> int:
        """The line of the rule at `index` (from 0): its `[[rules]]` header, else (an
        inline array) the line of `rules =`, else 1."""
        if index < len(self.headers):
            return self.headers[index]
        return self.key_line("rules", 1, len(self.code) + 1) or 1

    def field_line(self, index: int, field: str) -> int:
        """The line of `field` in the rule at `index`, else the rule's line."""
        if index < len(self.headers):
            end = self.headers[index + 1] if index + 1 < len(self.headers) else None
            found = self.key_line(field, self.headers[index], end)
            if found:
                return found
        return self.rule_line(index)

    def key_line(self, key: str, start: int, end: int | None) -> int | None:
        """The first line in [start, end) that sets `key` (`key =`, `key.x =`, `[rules.key]`)."""
        quoted = f"""(?:{re.escape(key)}|"{re.escape(key)}"|'{re.escape(key)}')"""
        setting = re.compile(rf"\s*{quoted}\s*[=.]|\s*\[\s*rules\s*\.\s*{quoted}\s*\]")
        for number, line in self.code:
            if number >= start and (end is None or number < end) and setting.match(line):
                return number
        return None


def toml_error(error: tomllib.TOMLDecodeError, text: str) -> tuple[str, int]:
    """tomllib's message without its position, and the line it names."""
    message = str(error)
    where = _TOML_WHERE.search(message)
    if where:
        return message[: where.start()], int(where.group(1))
    line = text.count("\n") + 1 if "end of document" in message else 1
    return message.removesuffix(" (at end of document)"), line


def code_lines(text: str) -> Iterator[tuple[int, str]]:
    """The lines of `text` that begin outside a multi-line string, numbered from 1 as
    tomllib numbers them (only "\\n" ends a line)."""
    inside: str | None = None
    for number, line in enumerate(text.split("\n"), start=1):
        if inside is None:
            yield number, line
        inside = _open_string_at_end(line, inside)


def _open_string_at_end(line: str, inside: str | None) -> str | None:
    """The multi-line string delimiter still open at the end of `line` (None if none),
    given the one open at its start."""
    at = 0
    while at < len(line):
        if inside is not None:
            end = _string_end(line, at, inside)
            if end < 0:
                return inside
            at, inside = end, None
        elif line[at] == "#":
            return None
        elif line.startswith(('"""', "'''"), at):
            inside, at = line[at : at + 3], at + 3
        elif line[at] in "\"'":
            end = _string_end(line, at + 1, line[at])
            at = len(line) if end < 0 else end
        else:
            at += 1
    return inside


def _string_end(line: str, start: int, delimiter: str) -> int:
    """The index just past `delimiter` closing a string from `start`; -1 if the line ends
    first. Backslashes escape only in double-quoted (basic) strings."""
    at = start
    while at < len(line):
        if delimiter[0] == '"' and line[at] == "\\":
            at += 2
        elif line.startswith(delimiter, at):
            return at + len(delimiter)
        else:
            at += 1
    return -1
