"""The infra examples the infra tests read: the rules file, the AWS JSON, and whether the
trigger code (`fillpipe watch`, the trigger settings) is in this tree."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from fillpipe.cli import main

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
AWS = INFRA / "aws"
RULES_EXAMPLE = INFRA / "rules.example.toml"
# Where compose mounts the rules file, and what FILLPIPE_RULES_FILE and --rules say.
RULES_PATH = "/etc/fillpipe/rules.toml"

# The trigger code lands beside these files; checks against it wait for it.
TRIGGERS_BUILT = "watch" in main.commands
needs_triggers = pytest.mark.skipif(
    not TRIGGERS_BUILT, reason="the trigger code (fillpipe watch) is not in this tree yet"
)


def load_json(path: Path) -> Any:
    return json.loads(path.read_text())


def example_rules() -> list[dict[str, Any]]:
    """The rules the example file defines (its commented examples left out)."""
    rules: list[dict[str, Any]] = tomllib.loads(RULES_EXAMPLE.read_text())["rules"]
    return rules


def example_rule() -> dict[str, Any]:
    """The one live rule of the example file, which the AWS examples are written for."""
    (rule,) = example_rules()
    return rule


def commented_rule_blocks() -> list[str]:
    """The example file's commented `[[rules]]` blocks, uncommented: each runs from a
    `# [[rules]]` line through the `# key = value` lines right after it."""
    blocks: list[list[str]] = []
    inside = False
    for line in RULES_EXAMPLE.read_text().splitlines():
        if line == "# [[rules]]":
            blocks.append([line[2:]])
            inside = True
        elif inside and line.startswith("# ") and " = " in line:
            blocks[-1].append(line[2:])
        else:
            inside = False
    return ["\n".join(block) + "\n" for block in blocks]


def commented_rules() -> list[dict[str, Any]]:
    """The example file's commented rules, parsed."""
    return [tomllib.loads(block)["rules"][0] for block in commented_rule_blocks()]
