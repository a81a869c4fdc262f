"""The code stays in small pieces: no module over 400 lines, no function over 40.

Read with `ast` only (nothing is imported or started). A function's size runs from its
`def` line to its last line, docstring and nested functions included; a module's size
is its number of lines.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(30)

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("pipeline", "workers", "webhook_receiver", "fillpipe", "emulator", "bench")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 40


def python_files() -> Iterator[Path]:
    for package in PACKAGES:
        yield from sorted((REPO / package).rglob("*.py"))


def functions(
    node: ast.AST, prefix: str = ""
) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """Every function and method under `node`, nested ones included, with its qualified name."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
            name = prefix + child.name
            yield name, child
            yield from functions(child, name + ".")
        elif isinstance(child, ast.ClassDef):
            yield from functions(child, prefix + child.name + ".")
        else:
            yield from functions(child, prefix)


def sizes() -> dict[str, tuple[int, int]]:
    """Entry ("path" or "path::name") -> (lines, limit), for every module and function."""
    found: dict[str, tuple[int, int]] = {}
    for path in python_files():
        relative = path.relative_to(REPO).as_posix()
        text = path.read_text(encoding="utf-8")
        found[relative] = (len(text.splitlines()), MAX_MODULE_LINES)
        for name, node in functions(ast.parse(text, filename=relative)):
            end = node.end_lineno if node.end_lineno is not None else node.lineno
            found[f"{relative}::{name}"] = (end - node.lineno + 1, MAX_FUNCTION_LINES)
    return found


def over_limit() -> dict[str, tuple[int, int]]:
    return {entry: size for entry, size in sizes().items() if size[0] > size[1]}


def describe(entries: dict[str, tuple[int, int]]) -> str:
    return "\n".join(
        f"  {entry}: {lines} lines (limit {limit})"
        for entry, (lines, limit) in sorted(entries.items())
    )


def test_modules_and_functions_are_within_the_limits():
    too_long = over_limit()
    if too_long:
        print("over the limits:\n" + describe(too_long))
    assert not too_long, "split these by concern:\n" + describe(too_long)
