import pickle
import textwrap

import pytest

from pipeline.errors import InputError, Problem, RulesInvalid
from pipeline.models import EditParams
from pipeline.triggers.rules import Rule, RuleSet, load_rules, parse_rules

pytestmark = pytest.mark.timeout(30)

EXAMPLE = """\
[[rules]]
name = "retouch"
bucket = "fillpipe"
prefix = "incoming/"
suffix = ".png"
mask = "{dir}/{stem}.mask.png"                          # a sibling object; it never makes a job of its own
output = "s3://fillpipe/incoming/edited/{stem}.{ext}"   # inside the rule's own prefix: the loop guard must hold
prompt = "a glossy studio finish"
finetune_id = "my-brand"
output_format = "png"
tags = { campaign = "spring" }
"""  # noqa: E501

BASE = 'prompt = "p"\nfinetune_id = "ft"\n'


def rules(text: str) -> RuleSet:
    return parse_rules(textwrap.dedent(text), source="rules.toml")


def rule(body: str) -> Rule:
    """The one rule of a `[[rules]]` table with `body` (name, prompt, finetune_id given)."""
    found = rules(f'[[rules]]\nname = "r"\n{BASE}{textwrap.dedent(body)}').rules
    assert len(found) == 1
    return found[0]


def problems(text: str) -> list[Problem]:
    with pytest.raises(RulesInvalid) as caught:
        rules(text)
    return caught.value.problems


def bad(body: str) -> list[Problem]:
    """The problems of one `[[rules]]` table: its name (line 2), then `body`, then prompt
    and finetune_id."""
    return problems(f'[[rules]]\nname = "r"\n{textwrap.dedent(body)}{BASE}')


def where(found: list[Problem]) -> list[tuple[int, str]]:
    return [(problem.line, problem.field) for problem in found]


# ---------------------------------------------------------------------------- the example


@pytest.fixture
def retouch(tmp_path) -> Rule:
    path = tmp_path / "rules.toml"
    path.write_text(EXAMPLE, encoding="utf-8")
    ruleset = load_rules(path)
    assert ruleset.source == str(path)
    assert len(ruleset.rules) == 1
    return ruleset.rules[0]


def test_the_example_file_reads_as_written(retouch):
    assert retouch.name == "retouch"
    assert (retouch.bucket, retouch.prefix, retouch.suffix, retouch.glob) == (
        "fillpipe",
        "incoming/",
        ".png",
        None,
    )
    assert retouch.mask == "{dir}/{stem}.mask.png"
    assert retouch.mask_prefix is None
    assert retouch.output == "s3://fillpipe/incoming/edited/{stem}.{ext}"
    assert retouch.params == EditParams("a glossy studio finish", "my-brand", output_format="png")
    assert retouch.tags == {"campaign": "spring"}
    assert retouch.line == 1


@pytest.mark.parametrize(
    ("key", "mask", "output"),
    [
        ("incoming/photo.png", "incoming/photo.mask.png", "incoming/edited/photo.png"),
        ("incoming/a/b/photo.png", "incoming/a/b/photo.mask.png", "incoming/edited/photo.png"),
        ("incoming/my photo.png", "incoming/my photo.mask.png", "incoming/edited/my photo.png"),
        ("incoming/été/çà ü.png", "incoming/été/çà ü.mask.png", "incoming/edited/çà ü.png"),
        ("incoming/a+b/c+d.png", "incoming/a+b/c+d.mask.png", "incoming/edited/c+d.png"),
        ("incoming/v1.2.png", "incoming/v1.2.mask.png", "incoming/edited/v1.2.png"),
    ],
)
def test_the_example_takes_its_images_with_sibling_masks(retouch, key, mask, output):
    assert retouch.wants("fillpipe", key)
    assert not retouch.is_mask("fillpipe", key)
    assert retouch.mask_uri(key) == f"s3://fillpipe/{mask}"
    assert retouch.output_uri(key) == f"s3://fillpipe/{output}"
    assert retouch.is_mask("fillpipe", mask)
    assert not retouch.wants("fillpipe", mask)


@pytest.mark.parametrize(
    ("bucket", "key"),
    [
        ("fillpipe", "incoming/photo.mask.png"),  # a mask
        ("fillpipe", "incoming/a b/ü+.mask.png"),  # a mask in a folder
        ("fillpipe", "incoming/edited/photo.png"),  # its own output: the loop guard
        ("fillpipe", "incoming/photo.jpg"),  # another suffix
        ("fillpipe", "incoming/photo.PNG"),  # suffixes compare case-sensitively, as S3's do
        ("fillpipe", "photo.png"),  # outside the prefix
        ("fillpipe", "incoming/"),  # the folder marker
        ("other", "incoming/photo.png"),  # another bucket
    ],
)
def test_the_example_leaves_other_keys_alone(retouch, bucket, key):
    assert not retouch.wants(bucket, key)


def test_the_example_is_one_watched_place():
    ruleset = parse_rules(EXAMPLE, source="rules.toml")
    assert ruleset.watched() == [("fillpipe", "incoming/")]
    assert ruleset.for_object("fillpipe", "incoming/x.png") == list(ruleset.rules)
    assert ruleset.for_object("fillpipe", "incoming/x.mask.png") == []
    assert ruleset.is_mask("fillpipe", "incoming/x.mask.png")


# ---------------------------------------------------------------------------- keys


def test_at_the_root_a_dir_template_loses_its_leading_slash():
    found = rule('bucket = "pics"\noutput = "{dir}/edited/{stem}.jpg"\n')
    assert found.mask_uri("photo.png") == "s3://pics/photo.mask.png"
    assert found.output_uri("photo.png") == "s3://pics/edited/photo.jpg"
    assert found.output_uri("a/photo.png") == "s3://pics/a/edited/photo.jpg"
    assert found.is_mask("pics", "photo.mask.png")
    assert found.is_output("pics", "edited/photo.jpg")
    assert not found.wants("pics", "edited/photo.jpg")
    assert found.wants("pics", "photo.png")


def test_key_templates_fill_key_dir_stem_and_ext():
    found = rule('bucket = "pics"\noutput = "out/{key}|{dir}|{stem}|{ext}"\n')
    assert found.output_uri("a/b/c.d.png") == "s3://pics/out/a/b/c.d.png|a/b|c.d|png"
    assert found.output_uri("noext") == "s3://pics/out/noext||noext|"
    assert found.output_uri(".hidden") == "s3://pics/out/.hidden||.hidden|"


def test_an_unusable_output_key_is_an_input_error():
    found = rule('bucket = "pics"\noutput = "{dir}/{stem}/x.jpg"\nsuffix = ".png"\n')
    with pytest.raises(InputError, match="segment"):
        found.output_uri("a/..png")


def test_a_glob_is_matched_below_the_prefix_and_star_stays_in_one_folder():
    deep = rule('bucket = "pics"\nprefix = "in/"\nglob = "**/*.jpg"\noutput = "o/{stem}.jpg"\n')
    assert deep.wants("pics", "in/a.jpg")
    assert deep.wants("pics", "in/x/y z/a.jpg")
    assert not deep.wants("pics", "in/a.png")
    assert not deep.wants("pics", "a.jpg")
    flat = rule('bucket = "pics"\nprefix = "in/"\nglob = "*.png"\noutput = "o/{stem}.jpg"\n')
    assert flat.wants("pics", "in/a.png")
    assert not flat.wants("pics", "in/x/a.png")
    sets = rule('bucket = "pics"\nglob = "[!_]?[0-9]*.png"\noutput = "o/{stem}.jpg"\n')
    assert sets.wants("pics", "ab7.png")
    assert not sets.wants("pics", "_b7.png")
    assert not sets.wants("pics", "abc.png")


def test_without_suffix_or_glob_every_key_under_the_prefix_is_an_image():
    found = rule('bucket = "pics"\nprefix = "in/"\noutput = "out/{stem}.jpg"\n')
    assert found.wants("pics", "in/a")
    assert found.wants("pics", "in/x/a.tiff")
    assert not found.wants("pics", "in/x/a.mask.png")
    assert not found.wants("pics", "in/x/")


def test_a_mask_prefix_mirrors_the_image_keys():
    found = rule(
        'bucket = "pics"\nprefix = "in/"\nmask_prefix = "in/masks/"\nsuffix = ".png"\n'
        'output = "out/{stem}.jpg"\n'
    )
    assert found.mask is None
    assert found.mask_uri("in/a/b c.png") == "s3://pics/in/masks/a/b c.png"
    assert found.is_mask("pics", "in/masks/a/b c.png")
    assert not found.wants("pics", "in/masks/a/b c.png")
    assert found.wants("pics", "in/a/b c.png")


def test_alpha_masks_need_no_mask_object():
    found = rule('bucket = "pics"\nmask = "alpha"\noutput = "out/{stem}.png"\n')
    assert found.mask is None
    assert found.mask_uri("a.png") is None
    assert not found.is_mask("pics", "a.mask.png")
    assert found.wants("pics", "a.mask.png")


def test_a_mask_template_may_name_another_bucket():
    found = rule('bucket = "pics"\nmask = "s3://maskbk/{key}"\noutput = "out/{stem}.png"\n')
    assert found.mask_uri("in/a.png") == "s3://maskbk/in/a.png"
    assert found.is_mask("maskbk", "in/a.png")
    assert not found.is_mask("pics", "in/a.png")
    assert found.wants("pics", "in/a.png")


def test_overlapping_rules_each_make_a_job_and_watch_one_place_per_prefix():
    ruleset = rules(
        f"""
        [[rules]]
        name = "all"
        bucket = "pics"
        prefix = "in/"
        output = "s3://out/all/{{stem}}.jpg"
        {BASE}
        [[rules]]
        name = "png"
        bucket = "pics"
        prefix = "in/png/"
        suffix = ".png"
        mask_prefix = "masks/"
        output = "s3://out/png/{{stem}}.jpg"
        {BASE}
        [[rules]]
        name = "other"
        bucket = "docs"
        mask = "m/{{stem}}.png"
        output = "o/{{stem}}.jpg"
        {BASE}
        """
    )
    assert [r.name for r in ruleset.for_object("pics", "in/png/x.png")] == ["all", "png"]
    assert [r.name for r in ruleset.for_object("pics", "in/x.png")] == ["all"]
    assert ruleset.is_mask("pics", "masks/x.png")
    assert ruleset.watched() == [("docs", ""), ("pics", "in/"), ("pics", "masks/")]


def test_rules_may_come_as_an_inline_array():
    found = rules(
        """
        rules = [
          { name = "a", bucket = "pics", output = "o/{stem}.jpg", prompt = "p", finetune_id = "f" },
        ]
        """
    )
    assert [r.name for r in found.rules] == ["a"]
    assert found.rules[0].line == 2


# ---------------------------------------------------------------------------- problems

EVERYTHING_WRONG = """\
# line 1
[[rules]]
name = "retouch"
bucket = "Fill_Pipe"
suffix = ".png"
glob = "*.png"
mask = "{dir}/{size}.mask.png"
mask_prefix = "masks/"
output = "{dir}/"
prompt = ""
steps = 99
tags = { "aws:x" = "y", ok = 3 }
promt = "typo"

[[rules]]
name = "retouch"
bucket = "fillpipe"
output = "edited/{stem}.{ext}"
suffix = ".png"
prompt = "p"
finetune_id = "f"
guidance = "high"
notes = '''
[[rules]]
'''

[[rules]]
bucket = "fillpipe"
output = "out/{stem"
prompt = "p"
finetune_id = "f"
seed = -1
safety_tolerance = 7
prompt_upsampling = "yes"
output_format = "webp"
finetune_strength = 3

[[rules]]
name = "bad name!"
bucket = "pics"
output = "s3://192.168.1.1/{stem}"
prompt = "p"
finetune_id = "f"
"""


def test_every_problem_is_reported_at_once_with_its_line_and_field():
    found = problems(EVERYTHING_WRONG)
    assert where(found) == [
        (2, "retouch.finetune_id"),
        (4, "retouch.bucket"),
        (6, "retouch.glob"),
        (7, "retouch.mask"),
        (8, "retouch.mask_prefix"),
        (9, "retouch.output"),
        (10, "retouch.prompt"),
        (11, "retouch.steps"),
        (12, "retouch.tags"),
        (12, "retouch.tags"),
        (13, "retouch.promt"),
        (16, "retouch.name"),
        (18, "retouch.output"),
        (22, "retouch.guidance"),
        (23, "retouch.notes"),
        (27, "rules[3].name"),
        (29, "rules[3].output"),
        (32, "rules[3].seed"),
        (33, "rules[3].safety_tolerance"),
        (34, "rules[3].prompt_upsampling"),
        (35, "rules[3].output_format"),
        (36, "rules[3].finetune_strength"),
        (39, "rules[4].name"),
        (41, "rules[4].output"),
    ]
    text = {(problem.field, problem.message) for problem in found}
    assert ("retouch.finetune_id", "is required") in text
    assert ("retouch.prompt", "is empty") in text
    assert ("retouch.glob", "suffix and glob are both given") in text
    assert ("retouch.mask_prefix", "mask and mask_prefix are both given") in text
    assert ("retouch.mask", "template has an unknown placeholder {size}") in text
    assert ("retouch.steps", "99 is out of range 15\u201350") in text
    assert ("retouch.name", "'retouch' is the name of the rule on line 2") in text
    assert ("rules[3].name", "is required") in text
    by_field = {problem.field: problem for problem in found}
    assert by_field["retouch.promt"].hint.startswith("did you mean 'prompt'?")
    assert "unbalanced braces" in by_field["rules[3].output"].message
    assert "IP address" in by_field["rules[4].output"].message
    assert "not a usable rule name" in by_field["rules[4].name"].message


def test_an_output_that_would_be_empty_or_a_folder_is_a_problem():
    (empty,) = problems(f'[[rules]]\nname = "r"\nbucket = "pics"\noutput = "{{dir}}"\n{BASE}')
    assert empty.message == "for an image 'photo.png': output key is empty"
    folder = f'[[rules]]\nname = "r"\nbucket = "pics"\nprefix = "in/"\noutput = "{{dir}}/"\n{BASE}'
    (problem,) = problems(folder)
    assert "ends with '/'" in problem.message
    assert problem.line == 5


def test_an_ext_output_must_hold_what_output_format_makes():
    (problem,) = problems(
        f'[[rules]]\nname = "r"\nbucket = "pics"\nsuffix = ".png"\noutput = "o/{{stem}}.{{ext}}"\n'
        f'{BASE}output_format = "jpeg"\n'
    )
    assert (problem.line, problem.field) == (5, "r.output")
    assert problem.message.startswith("{ext} names the outputs .png")
    assert ".jpg" in problem.hint and 'output_format = "png"' in problem.hint
    glob = rule('bucket = "pics"\nglob = "**/*.jpg"\noutput = "o/{stem}.{ext}"\n')
    assert glob.params.output_format == "jpeg"
    (webp,) = problems(
        f'[[rules]]\nname = "r"\nbucket = "pics"\nglob = "*.webp"\noutput = "o/{{stem}}.{{ext}}"\n'
        f"{BASE}"
    )
    assert "write the extension literally" in webp.hint
    assert "set output_format" not in webp.hint


def test_masks_or_outputs_that_swallow_the_images_are_problems():
    (mask,) = bad('bucket = "pics"\nmask = "{key}"\noutput = "o/{stem}.jpg"\n')
    assert (mask.field, mask.line) == ("r.mask", 4)
    assert "would count as masks" in mask.message
    (inside,) = bad(
        'bucket = "pics"\nprefix = "in/"\nmask_prefix = "in"\noutput = "o/{stem}.jpg"\n'
    )
    assert (inside.field, inside.line) == ("r.mask_prefix", 5)
    (same,) = bad('bucket = "pics"\nsuffix = ".jpg"\noutput = "{dir}/{stem}.jpg"\n')
    assert "would be the image itself" in same.message
    (own,) = bad('bucket = "pics"\noutput = "{dir}/{stem}"\n')
    assert "would count as the rule's outputs" in own.message


def test_a_mask_pattern_matching_images_of_the_rule_is_fine():
    found = rule('bucket = "pics"\nsuffix = ".png"\noutput = "o/{stem}.png"\n')
    assert found.wants("pics", "a.png")
    assert not found.wants("pics", "a.mask.png")


def test_toml_syntax_errors_carry_tomllib_s_message_and_line():
    (problem,) = problems('[[rules]]\nname = "r"\nbucket = b\n')
    assert problem.line == 3
    assert problem.message.startswith("not valid TOML: Invalid value")
    assert "(at line" not in problem.message


@pytest.mark.parametrize("text", ["", "# nothing\n", "rules = []\n"])
def test_a_file_without_rules_is_a_problem(text):
    (problem,) = problems(text)
    assert (problem.line, problem.message) == (1, "the file has no rules")


def test_unknown_top_level_keys_and_rules_that_are_not_tables_are_problems():
    found = problems('rulez = 1\n[rules]\nname = "r"\n')
    assert where(found) == [(1, "rulez"), (2, "rules")]
    (item,) = problems("rules = [1]\n")
    assert item.field == "rules[1]"


def test_template_buckets_and_schemes_are_checked():
    found = problems(
        f'[[rules]]\nname = "r"\nbucket = "pics"\nmask = "S3://mbk/{{key}}"\n'
        f'output = "s3://{{dir}}/x"\n{BASE}'
    )
    assert where(found) == [(4, "r.mask"), (5, "r.output")]
    assert "neither an s3:// URI" in found[0].message
    assert "is a template" in found[1].message


def test_a_missing_file_is_a_problem_with_a_hint(tmp_path):
    with pytest.raises(RulesInvalid) as caught:
        load_rules(tmp_path / "missing.toml")
    (problem,) = caught.value.problems
    assert problem.message == "the rules file does not exist"
    assert problem.hint == "check the path"
    assert str(caught.value).startswith("the rules file has 1 problem:")


def test_rules_invalid_pickles():
    with pytest.raises(RulesInvalid) as caught:
        rules("")
    copy = pickle.loads(pickle.dumps(caught.value))
    assert copy.problems == caught.value.problems
