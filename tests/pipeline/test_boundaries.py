"""The core stays framework-free: workers, the receiver, the command line and S3-triggered
workflows all build on `pipeline/`, so it imports none of them nor their frameworks."""

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(10)

FORBIDDEN = ("celery", "kombu", "starlette", "uvicorn", "click", "rich")
OURS_ABOVE = ("workers", "webhook_receiver", "fillpipe", "emulator")
PIPELINE = Path(__file__).resolve().parents[2] / "pipeline"


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize(
    "module",
    sorted(PIPELINE.rglob("*.py")),
    ids=lambda path: path.relative_to(PIPELINE).as_posix(),
)
def test_pipeline_imports_no_framework_and_nothing_built_on_it(module):
    assert not imported_roots(module) & {*FORBIDDEN, *OURS_ABOVE}
