"""Everything the installed packages import comes with a plain `pip install .`: each
third-party module is provided by a runtime dependency of pyproject.toml or by what
those depend on (their extras and fillpipe's dev extras do not count)."""

from __future__ import annotations

import ast
import sys
import tomllib
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, packages_distributions, requires
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("pipeline", "workers", "webhook_receiver", "emulator", "fillpipe")


def imported_modules() -> Iterator[tuple[str, Path]]:
    """The top-level name of every absolute import the packages make at run time (not
    those under `if TYPE_CHECKING:`), with its file."""
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in _run_time_nodes(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    yield from ((alias.name.split(".")[0], path) for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    yield node.module.split(".")[0], path


def _run_time_nodes(node: ast.AST) -> Iterator[ast.AST]:
    """`node` and what it holds, leaving out the bodies of `if TYPE_CHECKING:`."""
    yield node
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
            for other in child.orelse:
                yield from _run_time_nodes(other)
            continue
        yield from _run_time_nodes(child)


def runtime_closure() -> set[str]:
    """The runtime dependencies and, recursively, what they need without extras."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pending = [Requirement(text) for text in project["dependencies"]]
    found: set[str] = set()
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        if name in found or not _applies(requirement):
            continue
        found.add(name)
        try:
            pending += [Requirement(text) for text in requires(name) or []]
        except PackageNotFoundError:  # a platform's dependency not installed here
            continue
    return found


def _applies(requirement: Requirement) -> bool:
    return requirement.marker is None or requirement.marker.evaluate({"extra": ""})


def test_every_third_party_import_comes_with_the_runtime_dependencies():
    providers = packages_distributions()
    closure = runtime_closure()
    ours = set(PACKAGES)
    missing = {
        f"{module} ({path.relative_to(ROOT)})"
        for module, path in imported_modules()
        if module not in sys.stdlib_module_names
        and module not in ours
        and not any(canonicalize_name(dist) in closure for dist in providers.get(module, []))
    }
    assert not missing, f"imported but not installed by `pip install .`: {sorted(missing)}"
