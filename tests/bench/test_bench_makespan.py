"""The makespan bench's plumbing: the batch id read from `fillpipe submit`'s stdout, and
the script's bodies matching the manifest's rows."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from bench.bench_makespan import parse_batch_id
from bench.makespan_inputs import SAMPLES, manifest_rows, script_bodies, write_inputs

pytestmark = pytest.mark.timeout(60)


def test_the_batch_id_is_the_first_line_that_holds_one() -> None:
    assert parse_batch_id("b20261207-3f9a1c2e\n") == "b20261207-3f9a1c2e"
    assert parse_batch_id("\n  \nb20261207-00ff\nb20261208-11\n") == "b20261207-00ff"
    as_json = json.dumps({"batch_id": "b20261207-abc123", "rows": 3})
    assert parse_batch_id(as_json + "\n") == "b20261207-abc123"
    assert parse_batch_id("manifest.jsonl: 3 rows valid; nothing submitted\n") is None
    assert parse_batch_id("") is None


def test_the_script_sends_what_the_manifest_asks_for(tmp_path: Path) -> None:
    inputs = write_inputs(tmp_path / "inputs", 64)
    jobs = SAMPLES + 2

    rows = manifest_rows(inputs, jobs, "ft-1", "jpeg")
    bodies = script_bodies(inputs, jobs, "ft-1", "jpeg")

    assert len({row["id"] for row in rows}) == jobs
    assert [row["seed"] for row in rows] == list(range(1, jobs + 1))
    for row, body in zip(rows, bodies, strict=True):
        assert {k: body[k] for k in ("prompt", "finetune_id", "seed", "output_format")} == {
            k: row[k] for k in ("prompt", "finetune_id", "seed", "output_format")
        }
        assert base64.b64decode(body["image"]) == Path(row["image"]).read_bytes()
        assert base64.b64decode(body["mask"]) == Path(row["mask"]).read_bytes()
    # The inputs repeat after SAMPLES rows; every body of one sample shares its string.
    assert rows[SAMPLES]["image"] == rows[0]["image"]
    assert bodies[SAMPLES]["image"] is bodies[0]["image"]
