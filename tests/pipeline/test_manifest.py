import contextlib
import itertools
import json
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.errors import InputError
from pipeline.manifest import (
    ManifestInvalid,
    ManifestRow,
    Problem,
    detect_format,
    read_records,
    resolve_output,
    validate_rows,
)
from pipeline.storage import S3Uri

pytestmark = pytest.mark.timeout(30)

BASE = {"image": "s3://b/in/a.png", "prompt": "a red door", "finetune_id": "ft-1"}
CSV_HEADER = "id,image,mask,prompt,finetune_id,steps,guidance,tag.team\n"


def jsonl(*records: dict[str, object]) -> list[str]:
    return [json.dumps(record, ensure_ascii=False) + "\n" for record in records]


def rows(lines: list[str], fmt: str = "jsonl", bucket: str | None = "b") -> list[ManifestRow]:
    source = "manifest.csv" if fmt == "csv" else "manifest.jsonl"
    return list(validate_rows(lines, source=source, fmt=fmt, bucket=bucket))  # type: ignore[arg-type]


def problems(lines: list[str], fmt: str = "jsonl", bucket: str | None = "b") -> list[Problem]:
    with pytest.raises(ManifestInvalid) as caught:
        rows(lines, fmt, bucket)
    return caught.value.problems


def one_problem(lines: list[str], fmt: str = "jsonl") -> Problem:
    found = problems(lines, fmt)
    assert len(found) == 1, found
    return found[0]


# ---------------------------------------------------------------------------- formats


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("edits.jsonl", "jsonl"),
        ("s3://b/x/edits.NDJSON", "jsonl"),
        ("edits.json", "jsonl"),
        ("dir/edits.csv", "csv"),
    ],
)
def test_detect_format_by_extension(name, fmt):
    assert detect_format(name) == fmt


def test_detect_format_refuses_unknown_extension_with_a_hint():
    with pytest.raises(InputError, match=r"\.jsonl.*\.csv"):
        detect_format("edits.xlsx")


# ---------------------------------------------------------------------------- CSV


def test_csv_quoting_commas_quotes_and_newlines_in_prompts_and_bom():
    lines = [
        "\ufeff" + CSV_HEADER,
        'a,s3://b/in/a.png,,"red, ""bold""\n',
        'and tall",ft,20,,brand\n',
        "b,s3://b/in/b.png,s3://b/in/b-mask.png,plain,ft,,2.5,\n",
    ]
    first, second = rows(lines, "csv")
    assert first.line == 2 and first.job_id == "a"
    assert first.params.prompt == 'red, "bold"\nand tall'
    assert first.params.steps == 20
    assert first.tags == {"team": "brand"}
    assert first.mask is None
    assert second.line == 4
    assert second.mask == "s3://b/in/b-mask.png"
    assert second.params.guidance == 2.5
    assert second.tags == {}


def test_csv_lines_without_line_breaks_keep_newlines_inside_quotes():
    lines = ["image,prompt,finetune_id", 'a.png,"one', 'two",ft']
    (row,) = rows(lines, "csv")
    assert row.params.prompt == "one\ntwo"
    assert row.job_id == "1"


def test_csv_unknown_and_missing_columns_are_reported_once_at_the_header():
    lines = ["image,promt,finetune_id\n", "a.png,p,ft\n", "b.png,p,ft\n"]
    found = problems(lines, "csv")
    assert [(p.line, p.field) for p in found] == [(1, "promt"), (1, "prompt")]
    assert "did you mean 'prompt'" in found[0].hint


def test_csv_row_with_too_many_cells_is_a_problem():
    problem = one_problem(["image,prompt,finetune_id\n", "a.png,red, blue,ft\n"], "csv")
    assert problem.line == 2 and "4 cells" in problem.message
    assert "double quotes" in problem.hint


def test_csv_bad_quoting_is_a_problem_and_reading_goes_on():
    lines = [
        "image,prompt,finetune_id,steps\n",
        'a.png,"oops"x,ft,20\n',
        "b.png,p,ft,99\n",
    ]
    found = problems(lines, "csv")
    assert [(p.line, p.field) for p in found] == [(2, ""), (3, "steps")]


def test_csv_booleans_and_numbers_from_text():
    lines = ["image,prompt,finetune_id,prompt_upsampling,seed,finetune_strength\n"]
    lines += [f"{i}.png,p,ft,{word},7,0.5\n" for i, word in enumerate(["yes", "TRUE", "1", "no"])]
    found = rows(lines, "csv")
    assert [row.params.prompt_upsampling for row in found] == [True, True, True, False]
    assert found[0].params.seed == 7 and found[0].params.finetune_strength == 0.5


def test_csv_tags_column_is_refused_with_a_hint():
    problem = one_problem(["image,prompt,finetune_id,tags\n", "a.png,p,ft,x\n"], "csv")
    assert problem.field == "tags" and "tag.<key>" in problem.hint


# ---------------------------------------------------------------------------- unicode, URIs


def test_unicode_prompts_ids_and_tag_keys():
    record = {**BASE, "id": "café-ümlaut 1", "prompt": "薔薇の扉 🌹", "tags": {"équipe": "marché"}}
    (row,) = rows(jsonl(record))
    assert row.job_id == "café-ümlaut 1"
    assert row.params.prompt == "薔薇の扉 🌹"
    assert row.tags == {"équipe": "marché"}
    lines = ["\ufeffid,image,prompt,finetune_id,tag.équipe\n", "日本,a.png,ß,ft,ü\n"]
    (row,) = rows(lines, "csv")
    assert (row.job_id, row.tags) == ("日本", {"équipe": "ü"})


def test_spaces_and_plus_in_s3_keys():
    (row,) = rows(jsonl({**BASE, "image": "s3://b/my photos/a+b.png"}))
    assert S3Uri.parse(row.image) == S3Uri("b", "my photos/a+b.png")


@pytest.mark.parametrize(
    "image", ["s3://bucket-only", "s3:///key", "https://example.com/a.png", "s3://b/dir/"]
)
def test_bad_image_locations(image):
    problem = one_problem(jsonl({**BASE, "image": image}))
    assert problem.field == "image"


def test_image_and_prompt_and_finetune_are_required():
    found = problems(jsonl({"id": "x"}))
    assert sorted(p.field for p in found) == ["finetune_id", "image", "prompt"]


@pytest.mark.parametrize("name", ["image", "mask", "prompt", "finetune_id"])
def test_empty_strings_are_problems_not_silently_dropped_rows(name):
    problem = one_problem(jsonl({**BASE, name: " "}))
    assert (problem.field, problem.message) == (name, "is empty")


# ---------------------------------------------------------------------------- ids


def test_default_id_is_the_data_row_number():
    lines = ["\n", *jsonl(BASE, {**BASE, "id": "named"}), "\n", *jsonl(BASE)]
    assert [row.job_id for row in rows(lines)] == ["1", "named", "3"]


def test_duplicate_ids_name_both_lines():
    lines = jsonl({**BASE, "id": "a"}, BASE, {**BASE, "id": "a"})
    problem = one_problem(lines)
    assert (problem.line, problem.field) == (3, "id")
    assert "line 1" in problem.message


def test_explicit_id_colliding_with_a_default_id():
    problem = one_problem(jsonl(BASE, {**BASE, "id": "1"}))
    assert problem.line == 2 and "line 1" in problem.message


@pytest.mark.parametrize("job_id", ["", "x" * 201, "tab\there", "a|b", "semi;colon"])
def test_bad_ids(job_id):
    problem = one_problem(jsonl({**BASE, "id": job_id}))
    assert problem.field == "id" and problem.hint


def test_id_must_be_a_string_in_jsonl():
    assert one_problem(jsonl({**BASE, "id": 7})).field == "id"


def test_id_that_escapes_the_output_prefix_is_refused():
    problem = one_problem(jsonl({**BASE, "id": "../../etc"}))
    assert problem.field == "id" and ".." in problem.message


# ---------------------------------------------------------------------------- tags


def test_seven_user_tags_are_allowed_eight_are_not():
    seven = {f"k{i}": "v" for i in range(7)}
    (row,) = rows(jsonl({**BASE, "tags": seven}))
    assert row.tags == seven
    problem = one_problem(jsonl({**BASE, "tags": {**seven, "k7": "v"}}))
    assert problem.field == "tags" and "at most 7" in problem.hint


@pytest.mark.parametrize("key", ["aws:owner", "AWS:x", "fillpipe-job", "Fillpipe-x", "", "k" * 129])
def test_reserved_and_bad_tag_keys(key):
    problem = one_problem(jsonl({**BASE, "tags": {key: "v"}}))
    assert problem.field == "tags"


def test_tag_values_must_be_strings_with_s3_characters():
    found = problems(jsonl({**BASE, "tags": {"n": 12, "bad": "a&b", "long": "v" * 257}}))
    assert len(found) == 3
    assert "quotes" in found[0].hint


def test_csv_tag_column_with_reserved_prefix_is_a_header_problem():
    problem = one_problem(["image,prompt,finetune_id,tag.aws:x\n", "a.png,p,ft,v\n"], "csv")
    assert (problem.line, problem.field) == (1, "tag.aws:x")


# ---------------------------------------------------------------------------- all problems at once


def test_malformed_rows_are_all_reported_together():
    lines = [
        *jsonl(BASE),
        '{"image": "a.png", "prompt": "p"\n',  # 2: not JSON
        *jsonl({**BASE, "promt": "x", "steps": 80}),  # 3: unknown field, steps
        *jsonl(BASE),
        *jsonl({**BASE, "output_format": "gif"}),  # 5: output_format
        *jsonl({**BASE, "id": "1"}),  # 6: duplicate of the default id of line 1
    ]
    found = problems(lines)
    assert [(p.line, p.field) for p in found] == [
        (2, ""),
        (3, "promt"),
        (3, "steps"),
        (5, "output_format"),
        (6, "id"),
    ]
    assert str(found[2]) == (
        "manifest.jsonl:3: steps: 80 is out of range 15\u201350 (use a whole number from 15 to 50)"
    )


def test_manifest_invalid_pickles_and_lists_its_problems():
    found = [Problem("m.csv", n, "steps", f"bad {n}", "fix it") for n in range(1, 206)]
    error = ManifestInvalid(found)
    copy = pickle.loads(pickle.dumps(error))
    assert isinstance(copy, ManifestInvalid) and isinstance(copy, InputError)
    assert copy.problems == found
    text = str(copy)
    assert "m.csv:1: steps: bad 1 (fix it)" in text
    assert "m.csv:200: steps: bad 200" in text and "m.csv:201:" not in text
    assert text.endswith("… and 5 more")


def test_empty_manifest_is_a_problem():
    assert "no rows" in one_problem(["\n"]).message


def test_read_records_without_a_sink_raises_after_the_last_line():
    records = read_records(['{"a": 1}\n', "x\n", '{"b": 2}\n'], source="m", fmt="jsonl")
    assert next(records) == (1, {"a": 1})
    assert next(records) == (3, {"b": 2})
    with pytest.raises(ManifestInvalid):
        next(records)


def test_duplicate_json_keys_are_a_problem():
    problem = one_problem(['{"image": "a", "image": "b", "prompt": "p", "finetune_id": "f"}\n'])
    assert "twice" in problem.message


def test_long_sources_exceed_the_metadata_limit():
    long_image = "s3://b/" + "k" * 900 + ".png"
    problem = one_problem(jsonl({**BASE, "image": long_image, "mask": long_image}))
    assert problem.field == "" and "2048" in problem.hint


# ---------------------------------------------------------------------------- ranges and types

RANGES = [
    ("finetune_strength", 0, 2, -0.01, 2.01),
    ("steps", 15, 50, 14, 51),
    ("guidance", 1.5, 100, 1.49, 100.5),
    ("safety_tolerance", 0, 6, -1, 7),
]


@pytest.mark.parametrize(("name", "low", "high", "below", "above"), RANGES)
@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_ranges_just_inside_and_outside(fmt, name, low, high, below, above):
    def lines(value):
        if fmt == "jsonl":
            return jsonl({**BASE, name: value})
        return [f"image,prompt,finetune_id,{name}\n", f"a.png,p,ft,{value}\n"]

    for inside in (low, high):
        (row,) = rows(lines(inside), fmt)
        assert getattr(row.params, name) == inside
    for outside in (below, above):
        problem = one_problem(lines(outside), fmt)
        assert problem.field == name and "out of range" in problem.message


def test_seed_is_a_non_negative_whole_number():
    (row,) = rows(jsonl({**BASE, "seed": 42}))
    assert row.params.seed == 42
    assert rows(jsonl({**BASE, "seed": None}))[0].params.seed is None
    for bad in (-1, 1.5, "42", True, 2**63):
        assert one_problem(jsonl({**BASE, "seed": bad})).field == "seed"


def test_defaults():
    (row,) = rows(jsonl(BASE))
    params = row.params
    assert (params.finetune_strength, params.steps, params.guidance) == (1.1, 50, 60)
    assert (params.output_format, params.safety_tolerance, params.prompt_upsampling) == (
        "jpeg",
        2,
        False,
    )
    assert row.output is None and row.tags == {}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("steps", "50"),
        ("steps", 20.5),
        ("steps", True),
        ("guidance", "60"),
        ("prompt_upsampling", "true"),
        ("prompt_upsampling", 0),
        ("output_format", "JPEG"),
        ("prompt", 5),
        ("tags", ["a"]),
    ],
)
def test_jsonl_accepts_only_proper_json_types(name, value):
    assert one_problem(jsonl({**BASE, name: value})).field == name


def test_jsonl_whole_floats_count_as_integers():
    assert rows(jsonl({**BASE, "steps": 20.0}))[0].params.steps == 20


@pytest.mark.parametrize(("name", "value"), [("steps", "20.5"), ("steps", "x"), ("seed", "1e")])
def test_csv_bad_numbers(name, value):
    lines = [f"image,prompt,finetune_id,{name}\n", f"a.png,p,ft,{value}\n"]
    assert one_problem(lines, "csv").field == name


# ---------------------------------------------------------------------------- outputs


def resolve(template, job_id="j1", image="s3://b/in/photo.v2.png"):
    return resolve_output(
        template, bucket="b", batch_id="B1", job_id=job_id, ext="png", image=image
    )


@pytest.mark.parametrize(
    ("template", "uri"),
    [
        (None, "s3://b/outputs/B1/j1.png"),
        ("{stem}-{id}.{ext}", "s3://b/outputs/B1/photo.v2-j1.png"),
        ("s3://b/edited/{batch}/{stem}.{ext}", "s3://b/edited/B1/photo.v2.png"),
        ("s3://b/fixed name+1.jpg", "s3://b/fixed name+1.jpg"),
    ],
)
def test_good_output_templates_resolve(template, uri):
    assert str(resolve(template)) == uri


@pytest.mark.parametrize(
    "template",
    ["../x.png", "a/../../x", "/abs/x.png", "s3://other/x.png", "{nope}.png", "{id", "x}", ""],
)
def test_bad_output_templates_are_refused(template):
    with pytest.raises(InputError):
        resolve(template)


def test_stem_of_a_local_path():
    assert (
        str(resolve("{stem}.{ext}", image="C:\\photos\\shoe.jpeg")) == "s3://b/outputs/B1/shoe.png"
    )


def test_bad_output_is_a_row_problem():
    found = problems(jsonl({**BASE, "output": "s3://other/{id}.{ext}"}, {**BASE, "output": "{x}"}))
    assert [(p.line, p.field) for p in found] == [(1, "output"), (2, "output")]


def test_two_rows_writing_the_same_output_are_refused():
    same_image = {**BASE, "output": "{stem}.{ext}"}
    problem = one_problem(jsonl(same_image, {**BASE, "image": "s3://b/in/b.png"}, same_image))
    assert (problem.line, problem.field) == (3, "output")
    assert "line 1" in problem.message and "{id}" in problem.hint


def test_templates_with_id_are_not_tracked_for_collisions():
    found = rows(jsonl(*[{**BASE, "output": "{stem}-{id}.{ext}"} for _ in range(3)]))
    assert len(found) == 3


def test_output_bucket_is_only_compared_when_known():
    (row,) = rows(jsonl({**BASE, "output": "s3://other/{id}.{ext}"}), bucket=None)
    assert row.output == "s3://other/{id}.{ext}"


# ---------------------------------------------------------------------------- streaming


def test_rows_are_yielded_lazily():
    consumed = 0

    def lines():
        nonlocal consumed
        for n in range(100_000):
            consumed += 1
            yield json.dumps({**BASE, "id": f"r{n}"}) + "\n"

    first = list(itertools.islice(validate_rows(lines(), source="m", fmt="jsonl"), 10))
    assert [row.job_id for row in first] == [f"r{n}" for n in range(10)]
    assert consumed <= 11


def test_csv_rows_are_yielded_lazily():
    consumed = 0

    def lines():
        nonlocal consumed
        yield "image,prompt,finetune_id\n"
        for n in range(100_000):
            consumed += 1
            yield f"{n}.png,p,ft\n"

    first = list(itertools.islice(validate_rows(lines(), source="m", fmt="csv"), 10))
    assert len(first) == 10 and consumed <= 11


# ---------------------------------------------------------------------------- properties

tag_text = st.text(
    alphabet=st.characters(categories=["L", "N", "Zs"], include_characters="+-=._:/@"),
    max_size=20,
)
valid_records = st.fixed_dictionaries(
    {
        "image": st.just("s3://b/in/a.png"),
        "prompt": st.text(min_size=1).filter(str.strip),
        "finetune_id": tag_text.filter(bool),
    },
    optional={
        "finetune_strength": st.floats(0, 2),
        "steps": st.integers(15, 50),
        "guidance": st.floats(1.5, 100),
        "seed": st.none() | st.integers(0, 2**63 - 1),
        "output_format": st.sampled_from(["jpeg", "png"]),
        "safety_tolerance": st.integers(0, 6),
        "prompt_upsampling": st.booleans(),
        "tags": st.dictionaries(
            tag_text.filter(lambda k: k and not k.lower().startswith(("aws:", "fillpipe-"))),
            tag_text,
            max_size=7,
        ),
    },
)


@settings(max_examples=200, deadline=None)
@given(valid_records)
def test_valid_jsonl_records_yield_a_row(record):
    (row,) = rows(jsonl(record))
    assert row.params.prompt == record["prompt"]
    assert row.tags == record.get("tags", {})


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(), max_size=5), st.sampled_from(["jsonl", "csv"]))
def test_arbitrary_lines_raise_only_manifest_invalid(lines, fmt):
    with contextlib.suppress(ManifestInvalid):
        list(validate_rows(lines, source="m", fmt=fmt, bucket="b"))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)
field_names = st.sampled_from(["id", "image", "mask", "prompt", "finetune_id", "steps", "seed"])
field_names |= st.sampled_from(["guidance", "output", "tags", "output_format"]) | st.text()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.dictionaries(field_names, json_values, max_size=8), max_size=4))
def test_arbitrary_json_objects_raise_only_manifest_invalid(records):
    with contextlib.suppress(ManifestInvalid):
        found = rows(jsonl(*records))
        assert len(found) == len(records)  # no row is ever dropped without a problem


def test_a_row_names_its_account_which_must_be_configured():
    accounts = ("brand-a", "brand-b")
    lines = jsonl({**BASE, "account": "brand-b"}, {**BASE, "id": "2", "account": "brand-z"}, BASE)

    with pytest.raises(ManifestInvalid) as caught:
        list(validate_rows(lines, source="m.jsonl", fmt="jsonl", accounts=accounts))

    (problem,) = caught.value.problems
    assert (problem.line, problem.field) == (2, "account")
    assert "no provider account named 'brand-z'" in problem.message
    assert "brand-a, brand-b" in problem.hint
    good = list(validate_rows(jsonl({**BASE, "account": "brand-b"}, BASE), source="m", fmt="jsonl"))
    assert [row.account for row in good] == ["brand-b", None]
