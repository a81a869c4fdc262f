"""The intake on a real ledger and S3 server: validate, estimate, create, record the source."""

import json
import secrets

import pytest

from pipeline import intake
from pipeline.inputs import content_uri
from pipeline.manifest import ManifestInvalid
from pipeline.states import JobState
from pipeline.storage import S3Uri
from tests.pipeline.fakes import png

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def unique_png(size=(100, 50)) -> bytes:
    """A PNG no other test uploads (its colour is random), to tell whether it was."""
    return png(size=size, color=tuple(secrets.token_bytes(3)))


def write_manifest(folder, rows):
    path = folder / "edits.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.fixture
def photo(tmp_path):
    (tmp_path / "in").mkdir()
    image = tmp_path / "in" / "photo.png"
    image.write_bytes(unique_png())
    (tmp_path / "in" / "mask.png").write_bytes(png(size=(100, 50), mode="L"))
    return image


def row(image="in/photo.png", mask="in/mask.png", **fields):
    return {"image": image, "mask": mask, "prompt": "a red mug", "finetune_id": "ft-1", **fields}


def test_validate_counts_rows_checks_inputs_and_estimates(rt, tmp_path, photo):
    manifest = write_manifest(tmp_path, [row(id="a"), row(id="b", output_format="png")])

    checked = intake.validate(rt, str(manifest))
    unchecked = intake.validate(rt, str(manifest), check_inputs=False)

    assert (checked.rows, checked.inputs_checked, checked.source) == (2, True, str(manifest))
    # 100 x 50 px twice at the default 8 credits per megapixel.
    assert checked.estimated_credits == pytest.approx(2 * 0.005 * 8)
    assert checked.estimated_usd == pytest.approx(2 * 0.005 * 8 / 100)
    assert set(checked.checked_inputs) == {"a", "b"}
    assert (unchecked.inputs_checked, unchecked.estimated_credits) == (False, None)
    assert unchecked.checked_inputs == {}


def test_submit_uploads_records_the_source_and_dispatches_its_first_jobs(rt, tmp_path, photo):
    manifest = write_manifest(tmp_path, [row(id="a"), row(id="b")])

    submission = intake.submit(rt, str(manifest), budget_usd=1.5, priority=3)

    assert (submission.rows, submission.inputs_checked) == (2, True)
    assert submission.budget_credits == 150
    summary = rt.ledger.batches.summary(submission.batch_id)
    assert summary.source == str(manifest.resolve())
    # Both fit in the free slots: leased at once, their submits in the outbox.
    assert (summary.total, summary.counts, summary.priority) == (2, {JobState.DISPATCHED: 2}, 3)
    submits = [entry.ref.job_id for entry in rt.ledger.outbox.waiting()]
    assert submits == ["a", "b"]
    uploaded = content_uri(rt.settings.bucket, photo.read_bytes(), ".png")
    records = list(rt.ledger.jobs.of_batch(submission.batch_id))
    assert [record.spec.image_uri for record in records] == [str(uploaded)] * 2
    assert all(record.spec.checked_inputs for record in records)
    assert rt.ledger.batches.recent(1)[0].batch_id == submission.batch_id


def test_a_bad_row_or_input_stops_everything_before_any_upload(rt, tmp_path, photo):
    (tmp_path / "in" / "small-mask.png").write_bytes(png(size=(10, 10), mode="L"))
    rows = [row(id="a"), row(id="a", steps=99), row(image="in/nope.png")]
    manifest = write_manifest(tmp_path, rows)

    with pytest.raises(ManifestInvalid) as caught:
        intake.submit(rt, str(manifest))
    fields = [(problem.line, problem.field) for problem in caught.value.problems]
    # Missing files are listed with the other problems, in line order.
    assert fields == [(2, "id"), (2, "steps"), (3, "image")]

    manifest = write_manifest(tmp_path, [row(id="a"), row(id="b", mask="in/small-mask.png")])
    with pytest.raises(ManifestInvalid) as caught:
        intake.submit(rt, str(manifest))
    (problem,) = caught.value.problems
    assert (problem.line, problem.field) == (2, "image")
    assert "the mask is 10x10 but the image is 100x50" in problem.message
    assert "fix or replace the image or mask" in problem.hint

    uploaded = content_uri(rt.settings.bucket, photo.read_bytes(), ".png")
    assert rt.storage.metadata(uploaded) is None
    assert rt.ledger.batches.recent(10) == []


def test_missing_local_files_are_listed_with_every_row_problem(rt, tmp_path):
    manifest = write_manifest(tmp_path, [row(image="in/gone.png", mask="in/gone-mask.png")])
    with pytest.raises(ManifestInvalid) as caught:
        intake.validate(rt, str(manifest))
    assert [(p.line, p.field) for p in caught.value.problems] == [(1, "image"), (1, "mask")]
    assert "does not exist" in caught.value.problems[0].message


def test_a_manifest_in_s3_is_its_own_source(rt):
    image = S3Uri(rt.settings.bucket, f"uploads/{secrets.token_hex(4)}.png")
    rt.storage.write(image, unique_png(), content_type="image/png")
    manifest = S3Uri(rt.settings.bucket, f"manifests/{secrets.token_hex(4)}.jsonl")
    body = json.dumps(row(image=str(image), mask=None)) + "\n"
    rt.storage.write(manifest, body.encode(), content_type="application/x-ndjson")

    submission = intake.submit(rt, str(manifest), check_inputs=False)

    assert (submission.source, submission.inputs_checked) == (str(manifest), False)
    assert submission.estimated_credits is None and submission.estimated_usd is None
    assert rt.ledger.batches.summary(submission.batch_id).source == str(manifest)


def test_recent_batches_are_newest_first_and_limited(rt, clock, tmp_path, photo):
    manifest = write_manifest(tmp_path, [row()])
    made = []
    for _ in range(3):
        made.append(intake.submit(rt, str(manifest)).batch_id)
        clock.now += 1
    assert [s.batch_id for s in rt.ledger.batches.recent(2)] == made[:0:-1]
    assert [s.batch_id for s in rt.ledger.batches.recent(10)] == made[::-1]
    assert rt.ledger.batches.recent(0) == []
