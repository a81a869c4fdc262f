"""How outputs are made, as manifests, rules and settings say: `composite`, `feather_px`,
`color_match`, each left to the settings' default where a row or rule is silent."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from fillpipe.cli import main
from pipeline.errors import ConfigError
from pipeline.models import CompositeChoice, CompositeOptions, EditParams, JobRef, JobSpec
from pipeline.reports import CSV_FIELDS, csv_row, is_flagged
from pipeline.settings import Settings
from pipeline.states import JobState
from tests.ledger_jobs import WALK_TO_STORED
from tests.pipeline.test_manifest import BASE, jsonl, one_problem, rows
from tests.pipeline.test_notify import cli_env
from tests.pipeline.test_rules import bad, rule

pytestmark = pytest.mark.timeout(30)

ENVIRON = {
    "FILLPIPE_REDIS_URL": "redis://127.0.0.1:6379/0",
    "FILLPIPE_PROVIDER_URL": "http://127.0.0.1:9",
    "FILLPIPE_PROVIDER_KEY": "k",
    "FILLPIPE_SIGNING_KEY": "s" * 40,
}


def test_a_row_says_what_it_wants_and_leaves_the_rest_to_the_default():
    (row,) = rows(jsonl({**BASE, "composite": "none", "color_match": False}))

    assert row.composite == CompositeChoice(mode="none", feather_px=None, color_match=False)
    assert row.composite.over(CompositeOptions(feather_px=9)) == CompositeOptions(
        mode="none", feather_px=9, color_match=False
    )


def test_csv_rows_give_them_as_text():
    lines = ["image,prompt,finetune_id,composite,feather_px,color_match\n"]
    lines.append("s3://b/in/a.png,p,ft,PASTE,12,no\n")

    (row,) = rows(lines, fmt="csv")

    assert row.composite == CompositeChoice(mode="paste", feather_px=12, color_match=False)


@pytest.mark.parametrize(
    ("field", "value", "said"),
    [
        ("composite", "blend", "composite must be paste or none"),
        ("feather_px", 65, "out of range 0\u201364"),
        ("feather_px", 2.5, "not a whole number"),
        ("color_match", "sometimes", "not true or false"),
    ],
)
def test_a_bad_value_is_a_problem_on_its_line(field: str, value: object, said: str):
    problem = one_problem(jsonl({**BASE, field: value}))

    assert (problem.line, problem.field) == (1, field)
    assert said in problem.message


RULE_PLACE = 'bucket = "photos"\noutput = "out/{stem}.{ext}"\n'


def test_a_rule_takes_the_same_fields():
    chosen = rule(RULE_PLACE + 'feather_px = 0\ncomposite = "paste"\n')
    assert chosen.composite == CompositeChoice(mode="paste", feather_px=0)
    assert rule(RULE_PLACE).composite == CompositeChoice()
    (problem,) = bad(RULE_PLACE + "color_match = 3\n")
    assert problem.field == "r.color_match"


def test_settings_give_the_defaults_and_refuse_nonsense():
    settings = Settings.from_environ(
        {**ENVIRON, "FILLPIPE_COMPOSITE": "none", "FILLPIPE_FEATHER_PX": "8"}
    )
    assert settings.composite == CompositeOptions(mode="none", feather_px=8, color_match=True)
    assert Settings.from_environ(ENVIRON).composite == CompositeOptions()
    with pytest.raises(ConfigError) as caught:
        Settings.from_environ(
            {**ENVIRON, "FILLPIPE_FEATHER_PX": "100", "FILLPIPE_COLOR_MATCH": "maybe"}
        )
    assert "FILLPIPE_FEATHER_PX must be at most 64" in str(caught.value)
    assert "FILLPIPE_COLOR_MATCH must be true or false" in str(caught.value)


def test_a_job_keeps_its_options_through_the_ledger_json():
    spec = JobSpec(
        ref=JobRef("b", "j"),
        image_uri="s3://b/i.png",
        mask_uri=None,
        output_uri="s3://b/o.png",
        params=EditParams("p", "ft"),
        composite=CompositeOptions(mode="none", feather_px=2, color_match=False),
    )

    assert JobSpec.from_json(spec.to_json()) == spec


def test_results_csv_spreads_the_qa_figures_into_columns():
    row = {"id": "j", "state": "stored", "qa": {"drift_mean": 3.2, "flagged": True}}

    flat = csv_row(row)

    assert flat["qa.drift_mean"] == 3.2 and flat["qa.flagged"] is True
    assert flat["qa.seam"] is None and "qa" not in flat
    assert set(flat) <= set(CSV_FIELDS) | {"id", "state"}
    assert is_flagged(row) and not is_flagged({"qa": None})


def store_with_qa(rt, ref, qa: dict[str, object]) -> None:
    source = JobState.DISPATCHED
    for step in (*WALK_TO_STORED, JobState.STORED):
        fields = {"qa": json.dumps(qa)} if step is JobState.STORED else {}
        rt.ledger.jobs.transition(ref, from_states=[source], to_state=step, fields=fields)
        source = step


@pytest.mark.parametrize("flagged", [True, False])
def test_results_flagged_lists_only_the_flagged_jobs(rt, new_job, valkey_url, s3_env, flagged):
    ref = new_job()
    store_with_qa(rt, ref, {"composited": True, "drift_mean": 3.0, "seam": 9.5, "flagged": flagged})
    env = cli_env(valkey_url, s3_env)

    only = CliRunner().invoke(main, ["results", ref.batch_id, "--flagged"], env=env)
    every = CliRunner().invoke(main, ["results", ref.batch_id, "--format", "csv"], env=env)

    assert only.exit_code == 0 and every.exit_code == 0, only.output + every.output
    lines = only.output.splitlines()
    assert len(lines) == (1 if flagged else 0)
    if flagged:
        assert json.loads(lines[0])["qa"]["seam"] == 9.5
    header, row = every.output.splitlines()
    assert "qa.flagged" in header.split(",")
    assert row.endswith(str(flagged))
