"""A worker keeps what each job's submit sent, so the job's collect need not read it again."""

from __future__ import annotations

import pytest

from pipeline.collect import collect_job
from pipeline.models import JobRef
from pipeline.sent_inputs import SentInputs
from pipeline.states import JobState
from pipeline.storage import S3Uri
from tests.pipeline.test_jobs import submitted

pytestmark = pytest.mark.timeout(30)

A, B, C = JobRef("b", "a"), JobRef("b", "b"), JobRef("b", "c")


def test_a_job_takes_back_what_it_kept_once():
    kept = SentInputs()
    kept.keep(A, b"image", b"mask")

    assert kept.take(A) == (b"image", b"mask")
    assert kept.take(A) is None
    assert kept.take(B) is None


def test_the_least_recently_kept_go_first_past_the_budget():
    kept = SentInputs(max_bytes=10)
    kept.keep(A, b"1234", None)
    kept.keep(B, b"12", b"34")
    kept.keep(C, b"12345", None)  # 13 bytes in all: A goes

    assert kept.take(A) is None
    assert kept.take(B) == (b"12", b"34") and kept.take(C) == (b"12345", None)
    kept.keep(A, b"x" * 11, None)  # larger than the whole budget: not kept
    assert kept.take(A) is None


def test_the_collect_pastes_over_what_the_submit_sent_without_reading_s3(rt, new_job, fake):
    ref = submitted(rt, new_job, fake)
    spec = rt.ledger.jobs.get(ref).spec
    image = S3Uri.parse(spec.image_uri)
    rt.storage.client.delete_object(Bucket=image.bucket, Key=image.key)

    assert collect_job(rt, ref, 1) is JobState.STORED


def test_a_collect_in_another_process_reads_the_inputs_from_s3(rt, new_job, fake):
    ref = submitted(rt, new_job, fake)
    rt.sent_inputs.take(ref)  # as if the submit ran in another worker
    spec = rt.ledger.jobs.get(ref).spec
    image = S3Uri.parse(spec.image_uri)
    rt.storage.client.delete_object(Bucket=image.bucket, Key=image.key)

    assert collect_job(rt, ref, 1) is JobState.FAILED
    assert str(image) in rt.ledger.jobs.get(ref).error
