"""The formatting helpers every command prints with."""

import pytest

from fillpipe.output import batch_json, columns, iso_utc, nonzero_counts
from pipeline.ledger import BatchSummary
from pipeline.states import JobState

pytestmark = pytest.mark.timeout(10)


def test_columns_align_and_leave_the_last_one_unpadded():
    rows = [("job", "credits", "output"), ("mug-01", "2.1", "s3://b/k 1.png"), ("a", "10", "")]
    assert columns(rows, right=[1]) == [
        "job     credits  output",
        "mug-01      2.1  s3://b/k 1.png",
        "a            10",
    ]
    assert columns([]) == []


def test_times_are_iso_8601_utc_to_the_second():
    assert iso_utc(1_900_000_000.75) == "2030-03-17T17:46:40Z"


def test_a_batch_as_json_names_every_state_and_its_source():
    summary = BatchSummary(
        batch_id="b20300317-00000001",
        total=3,
        counts={JobState.STORED: 2, JobState.FAILED: 1},
        cost_credits=12.5,
        created_at=1_900_000_000.0,
        budget_credits=100.0,
        source="s3://in/m.jsonl",
    )
    document = batch_json(summary)
    assert document["counts"] == {
        state.value: {JobState.STORED: 2, JobState.FAILED: 1}.get(state, 0) for state in JobState
    }
    assert (document["source"], document["created"]) == ("s3://in/m.jsonl", "2030-03-17T17:46:40Z")
    assert (document["cost_usd"], document["budget_usd"], document["done"]) == (0.125, 1.0, True)
    assert nonzero_counts(summary) == "stored=2 failed=1"
    assert batch_json(BatchSummary("b1", 0, {}, 0.0, 0.0))["source"] is None
