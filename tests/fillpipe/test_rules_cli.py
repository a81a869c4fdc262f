"""`fillpipe rules check` as a user runs it: a separate process, offline, exit codes."""

import pytest

from tests.commands import run_fillpipe
from tests.pipeline.test_rules import EXAMPLE

pytestmark = pytest.mark.timeout(60)

SECOND_RULE = """
[[rules]]
name = "catalogue"
bucket = "shop-images"
glob = "**/*.jpg"
mask_prefix = "masks/"
output = "edited/{key}"
prompt = "white background"
finetune_id = "shop"

[[rules]]
name = "alpha"
bucket = "shop-images"
prefix = "cutouts/"
mask = "alpha"
output = "s3://fillpipe/cutouts/{stem}.jpg"
prompt = "white background"
finetune_id = "shop"
"""

BAD = """\
[[rules]]
name = "retouch"
bucket = "Fill_Pipe"
output = "{dir}/"
prompt = "a glossy studio finish"
steps = 99
promt = "typo"

[[rules]]
name = "retouch"
bucket = "fillpipe"
output = "out/{size}.png"
prompt = "p"
finetune_id = "f"
"""


def test_a_good_file_prints_one_line_per_rule(tmp_path, clean_environ):
    path = tmp_path / "rules.toml"
    path.write_text(EXAMPLE + SECOND_RULE, encoding="utf-8")
    result = run_fillpipe("rules", "check", str(path), env=clean_environ)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [line.split() for line in lines] == [
        [
            "retouch",
            "s3://fillpipe/incoming/",
            "suffix=.png",
            "mask={dir}/{stem}.mask.png",
            "s3://fillpipe/incoming/edited/{stem}.{ext}",
        ],
        [
            "catalogue",
            "s3://shop-images/",
            "glob=**/*.jpg",
            "mask_prefix=masks/",
            "s3://shop-images/edited/{key}",
        ],
        [
            "alpha",
            "s3://shop-images/cutouts/",
            "all",
            "mask=alpha",
            "s3://fillpipe/cutouts/{stem}.jpg",
        ],
    ]
    assert result.stderr.strip() == f"{path}: 3 rules valid"


def test_a_bad_file_lists_every_problem_on_stderr_and_exits_2(tmp_path, clean_environ):
    path = tmp_path / "rules.toml"
    path.write_text(BAD, encoding="utf-8")
    result = run_fillpipe("rules", "check", str(path), env=clean_environ)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0] == "fillpipe: the rules file has 7 problems:"
    assert [line.split(": ", 2)[:2] for line in lines[1:]] == [
        [f"{path}:1", "retouch.finetune_id"],
        [f"{path}:3", "retouch.bucket"],
        [f"{path}:4", "retouch.output"],
        [f"{path}:6", "retouch.steps"],
        [f"{path}:7", "retouch.promt"],
        [f"{path}:10", "retouch.name"],
        [f"{path}:12", "retouch.output"],
    ]
    assert "did you mean 'prompt'?" in result.stderr
    assert "unknown placeholder {size}" in result.stderr


def test_a_missing_file_is_bad_input(tmp_path, clean_environ):
    result = run_fillpipe("rules", "check", str(tmp_path / "nope.toml"), env=clean_environ)
    assert result.returncode == 2
    assert "the rules file does not exist (check the path)" in result.stderr
