"""The dashboard bench runs end to end at a small size and reports every page."""

from __future__ import annotations

import pytest

from bench.bench_dashboard import main

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def test_the_bench_measures_every_page_and_states_its_target(capsys: pytest.CaptureFixture[str]):
    main(
        ["--jobs", "300", "--ended", "120", "--failed", "60", "--requests", "3", "--previews", "2"]
    )

    out = capsys.readouterr().out
    assert "a batch of 300 jobs (60 stored, 60 failed) beside one of 100" in out
    for label in ("batch page 3 (middle)", "failed jobs, page 2 (last)", "preview, kept"):
        assert label in out
    assert "target: the 300-job batch's pages <= 200 ms server time: worst p99" in out
