"""infra/rules.example.toml: the example rule as documented, commented examples that parse,
and a file `fillpipe rules check` accepts."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from fillpipe.cli import main
from tests.infra.examples import (
    RULES_EXAMPLE,
    commented_rule_blocks,
    commented_rules,
    example_rule,
)

pytestmark = pytest.mark.timeout(30)


def test_the_example_rule_is_the_documented_one() -> None:
    assert example_rule() == {
        "name": "retouch",
        "bucket": "fillpipe",
        "prefix": "incoming/",
        "suffix": ".png",
        "mask": "{dir}/{stem}.mask.png",
        "output": "s3://fillpipe/incoming/edited/{stem}.{ext}",
        "prompt": "a glossy studio finish",
        "finetune_id": "my-brand",
        "output_format": "png",
        "tags": {"campaign": "spring"},
    }


def test_its_output_lands_inside_its_own_prefix_so_the_loop_guard_is_exercised() -> None:
    rule = example_rule()
    assert rule["output"].startswith(f"s3://{rule['bucket']}/{rule['prefix']}")


def test_the_commented_examples_show_an_alpha_mask_and_a_mask_prefix() -> None:
    examples = commented_rules()
    assert [rule.get("mask") for rule in examples] == ["alpha", None]
    assert [rule.get("mask_prefix") for rule in examples] == [None, "masks/"]
    names = [example_rule()["name"], *(rule["name"] for rule in examples)]
    assert len(set(names)) == len(names)


needs_rules_cli = pytest.mark.skipif(
    "rules" not in main.commands, reason="`fillpipe rules` is not built yet"
)


@needs_rules_cli
def test_fillpipe_rules_check_accepts_the_example() -> None:
    result = CliRunner().invoke(main, ["rules", "check", str(RULES_EXAMPLE)])
    assert result.exit_code == 0, result.output


@needs_rules_cli
def test_fillpipe_rules_check_accepts_the_commented_examples_switched_on(tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text("\n".join([RULES_EXAMPLE.read_text(), *commented_rule_blocks()]))
    result = CliRunner().invoke(main, ["rules", "check", str(rules)])
    assert result.exit_code == 0, result.output
