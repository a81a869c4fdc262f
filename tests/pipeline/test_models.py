"""The job spec as the ledger and the S3 manifest copy keep it."""

import dataclasses
import json

import pytest

from pipeline.models import EditParams, JobRef, JobSpec

pytestmark = pytest.mark.timeout(10)

SPEC = JobSpec(
    ref=JobRef("b20261203-0001", "édit 1"),
    image_uri="s3://fillpipe/inputs/a.png",
    mask_uri=None,
    output_uri="s3://fillpipe/outputs/b20261203-0001/édit 1.jpg",
    params=EditParams(prompt="a red mug", finetune_id="ft-1"),
    tags={"campaign": "spring"},
    checked_inputs="ab" * 32,
)


def test_a_spec_round_trips_through_json():
    assert JobSpec.from_json(SPEC.to_json()) == SPEC


def test_specs_recorded_before_checked_inputs_still_load():
    older = json.loads(SPEC.to_json())
    del older["checked_inputs"]
    assert JobSpec.from_json(json.dumps(older)) == dataclasses.replace(SPEC, checked_inputs=None)
