"""The job life cycle against a real Valkey and a real S3 server, with a scripted provider."""

import dataclasses
import io
import json

import pytest
from PIL import Image

from pipeline import reports
from pipeline.callbacks import CallbackReport
from pipeline.collect import collect_job
from pipeline.errors import NotReadyYet
from pipeline.ledger import Callback
from pipeline.models import JobRef
from pipeline.provider import TaskStatus
from pipeline.reconcile import sweep
from pipeline.signing import CallbackClaim
from pipeline.states import JobState
from pipeline.storage import S3Uri
from pipeline.submit import submit_job
from tests.pipeline.fakes import decoded, png, truncated_png

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def submit(rt, ref):
    """Run the job's submit task as a worker would: dispatch it first if it is queued."""
    if rt.ledger.jobs.get(ref).state is JobState.QUEUED:
        rt.ledger.slots.dispatch()
    record = rt.ledger.jobs.get(ref)
    assert record.state is JobState.DISPATCHED, record
    return submit_job(rt, ref, record.attempt)


def submitted(rt, new_job, fake):
    ref = new_job()
    assert submit(rt, ref) is JobState.AWAITING_RESULT
    return ref


def test_submit_posts_inputs_with_a_verifiable_callback(rt, new_job, fake, clock):
    ref = submitted(rt, new_job, fake)
    record = rt.ledger.jobs.get(ref)
    assert (record.attempt, record.provider_task_id, record.cost_credits) == (1, "task-1", 4.5)
    body = fake.submits[0]
    assert decoded(body, "image") == png() and decoded(body, "mask") == png(mode="L")
    assert body["finetune_id"] == "ft-1" and body["output_format"] == "png"
    prefix = "https://hooks.example.com/v1/callbacks/bfl/"
    assert body["webhook_url"].startswith(prefix)
    claim = rt.signer.verify(
        body["webhook_url"].removeprefix(prefix),
        {"x-webhook-secret": body["webhook_secret"]},
        b"{}",
    )
    assert claim == CallbackClaim(ref, 1)
    assert rt.ledger.batches.summary(ref.batch_id).cost_credits == 4.5


def test_submit_is_idempotent(rt, new_job, fake):
    ref = submitted(rt, new_job, fake)
    assert submit_job(rt, ref, 1) is None  # a redelivered submit message
    assert len(fake.submits) == 1


@pytest.mark.parametrize(
    ("image", "mask", "message"),
    [
        (None, png(size=(10, 10), mode="L"), "same size"),
        (b"garbage", None, "does not decode"),
        (None, None, "no alpha channel"),
    ],
)
def test_bad_inputs_end_invalid_without_spending(rt, new_job, fake, image, mask, message):
    ref = new_job(image=image, mask=mask)
    assert submit(rt, ref) is JobState.INVALID_INPUT
    assert message in rt.ledger.jobs.get(ref).error
    assert fake.submits == []


def test_inputs_checked_by_submit_are_not_decoded_again(rt, new_job, fake):
    # The pixels of a truncated PNG do not decode, but its header reads; with the digest
    # `fillpipe submit` records for bytes it decoded in full, they are not decoded again.
    truncated = truncated_png()
    ref = new_job(image=truncated, checked=True)
    assert submit(rt, ref) is JobState.AWAITING_RESULT
    assert decoded(fake.submits[0], "image") == truncated


def test_inputs_changed_since_the_submit_check_are_decoded_in_full(rt, new_job, fake):
    ref = new_job(checked=True)
    image_uri = S3Uri.parse(rt.ledger.jobs.get(ref).spec.image_uri)
    rt.storage.write(image_uri, truncated_png(), content_type="image/png")
    assert submit(rt, ref) is JobState.INVALID_INPUT
    assert "the image does not decode" in rt.ledger.jobs.get(ref).error
    assert fake.submits == []


def test_missing_input_object_is_invalid_input(rt, new_job, fake):
    ref = new_job()
    rt.storage.client.delete_object(
        Bucket=rt.settings.bucket, Key=S3Uri.parse(rt.ledger.jobs.get(ref).spec.image_uri).key
    )
    assert submit(rt, ref) is JobState.INVALID_INPUT
    assert "does not exist" in rt.ledger.jobs.get(ref).error
    assert fake.submits == []


def test_unreachable_provider_puts_the_job_back_and_cools_down(rt, new_job, fake):
    fake.submit_status = 599
    ref = new_job()
    assert submit(rt, ref) is JobState.QUEUED
    assert rt.ledger.jobs.get(ref).state is JobState.QUEUED
    assert rt.ledger.slots.leases() == {}
    assert rt.ledger.account().cooldown_left_s() > 0
    assert rt.ledger.slots.dispatch() == 0  # nothing goes out while cooling down


def test_rejected_submit_fails_with_the_providers_message(rt, new_job, fake):
    fake.submit_status = 422
    ref = new_job()
    assert submit(rt, ref) is JobState.FAILED
    assert "scripted failure" in rt.ledger.jobs.get(ref).error


def test_ambiguous_submit_waits_then_makes_a_new_attempt(rt, new_job, fake, clock):
    fake.submit_status = 500
    ref = new_job()
    assert submit(rt, ref) is JobState.AWAITING_RESULT
    assert len(fake.submits) == 1
    assert ref in rt.ledger.slots.leases()  # the task may be running: its slot stays taken
    assert ref not in sweep(rt).requeued  # not yet late
    clock.now += rt.settings.deadlines.ambiguous_submit_s + 1
    assert ref in sweep(rt).requeued
    assert rt.ledger.slots.leases() == {}  # back in line, and dispatched again at once
    assert rt.ledger.jobs.get(ref).attempt == 2
    fake.submit_status = 200
    assert submit(rt, ref) is JobState.AWAITING_RESULT
    assert rt.ledger.jobs.get(ref).attempt == 2


READY = CallbackReport(task_id="t-1", status=TaskStatus.READY)


def test_callbacks_are_deduplicated_and_stale_ones_ignored(rt, new_job, fake):
    ref = submitted(rt, new_job, fake)

    def accept(job, attempt, *, final=True):
        [answer] = rt.ledger.scripts.accept_callbacks([Callback(job, attempt, final, "t-1")])
        return answer

    assert accept(ref, 1, final=False) == "pending"
    assert ref in rt.ledger.slots.leases()
    assert accept(ref, 1) == "collect"
    assert rt.ledger.slots.leases() == {}  # the provider ended the task: its slot is free
    assert accept(ref, 1) == "duplicate"
    assert accept(ref, 2) == "stale"
    assert accept(ref.__class__(ref.batch_id, "nope"), 1) == "unknown"


def pixels_of(data: bytes) -> list[int]:
    return list(Image.open(io.BytesIO(data)).convert("RGB").tobytes())


def test_collect_stores_once_with_tags_and_metadata(rt, new_job, fake):
    ref = submitted(rt, new_job, fake)
    assert collect_job(rt, ref, 1) is JobState.STORED
    assert collect_job(rt, ref, 1) is None  # a redelivered collect
    record = rt.ledger.jobs.get(ref)
    stored = rt.storage.fetch(S3Uri.parse(record.spec.output_uri))
    # The mask repaints every pixel: the output is the provider's image, pasted whole.
    assert pixels_of(stored.body) == pixels_of(fake.result_bytes)
    assert stored.content_type == "image/png"
    assert stored.metadata["qa-composited"] == "true"
    assert record.qa is not None and record.qa["composited"] is True
    assert stored.tags == {
        "fillpipe-batch": ref.batch_id,
        "fillpipe-job": ref.job_id,
        "fillpipe-finetune": "ft-1",
        "campaign": "spring",
    }
    assert stored.metadata["provider-task-id"] == "task-1"
    assert stored.metadata["seed"] == "7"
    assert "test-provider-key" not in str(stored.metadata)
    assert not any("sig=" in value for value in stored.metadata.values())
    assert record.seed == 7
    assert rt.ledger.batches.summary(ref.batch_id).done


def test_callback_racing_the_submit_bookkeeping_waits(rt, new_job, fake):
    ref = new_job()
    rt.ledger.jobs.transition(ref, from_states=[JobState.DISPATCHED], to_state=JobState.SUBMITTING)
    with pytest.raises(NotReadyYet):
        collect_job(rt, ref, 1)


def test_pending_result_goes_back_to_waiting(rt, new_job, fake):
    ref = submitted(rt, new_job, fake)
    fake.status = "Pending"
    assert collect_job(rt, ref, 1) is JobState.AWAITING_RESULT
    fake.status = "Ready"
    assert collect_job(rt, ref, 1) is JobState.STORED


def test_expired_result_url_is_read_again_from_the_polling_url(rt, new_job, fake):
    ref = submitted(rt, new_job, fake)
    fake.expired_downloads = 1
    assert collect_job(rt, ref, 1) is JobState.STORED
    assert (fake.polls, fake.downloads) == (2, 2)


@pytest.mark.parametrize("status", ["Content Moderated", "Request Moderated", "Error"])
def test_unusable_outcomes_fail_the_job_and_free_its_slot(rt, new_job, fake, status):
    ref = submitted(rt, new_job, fake)
    fake.status = status
    assert collect_job(rt, ref, 1) is JobState.FAILED
    assert status in rt.ledger.jobs.get(ref).error
    assert rt.ledger.slots.leases() == {}
    refunded = "Moderated" in status  # the provider does not charge moderated tasks
    assert rt.ledger.batches.summary(ref.batch_id).cost_credits == (0 if refunded else 4.5)


def test_result_that_is_not_an_image_is_not_stored(rt, new_job, fake):
    ref = submitted(rt, new_job, fake)
    fake.result_bytes = b"<html>not an image</html>"
    assert collect_job(rt, ref, 1) is JobState.FAILED
    assert "the result does not decode as an image" in rt.ledger.jobs.get(ref).error
    assert rt.storage.metadata(S3Uri.parse(rt.ledger.jobs.get(ref).spec.output_uri)) is None


def test_output_owned_by_another_job_is_not_overwritten(rt, new_job, fake):
    first = submitted(rt, new_job, fake)
    collect_job(rt, first, 1)
    taken = rt.ledger.jobs.get(first).spec.output_uri
    second = new_job(job_id="other", output_uri=taken)
    assert submit(rt, second) is JobState.AWAITING_RESULT
    assert collect_job(rt, second, 1) is JobState.FAILED
    assert "belongs to another job" in rt.ledger.jobs.get(second).error


def test_late_callback_is_polled_by_reconcile(rt, new_job, fake, clock):
    ref = submitted(rt, new_job, fake)
    assert ref not in sweep(rt).polled
    clock.now += rt.settings.deadlines.callback_late_s + 1
    assert ref in sweep(rt).polled
    assert ref not in sweep(rt).polled  # re-filed, not polled twice


def test_cancel_stops_new_submissions_but_in_flight_jobs_finish(rt, new_job, fake):
    in_flight = submitted(rt, new_job, fake)
    batch_id = in_flight.batch_id
    assert rt.ledger.batches.cancel(batch_id) == 0  # nothing queued: the job is in flight
    assert collect_job(rt, in_flight, 1) is JobState.STORED
    rt.ledger.account().pause("hold every new job in line")
    queued = new_job()
    assert rt.ledger.batches.cancel(queued.batch_id) == 1
    rt.ledger.account().resume()
    assert rt.ledger.slots.dispatch() == 0
    assert rt.ledger.jobs.get(queued).state is JobState.CANCELLED
    assert len(fake.submits) == 1
    assert rt.ledger.batches.summary(queued.batch_id).done


def test_retry_requeues_failed_jobs_as_new_attempts(rt, new_job, fake):
    fake.submit_status = 422
    ref = new_job()
    assert submit(rt, ref) is JobState.FAILED
    assert rt.ledger.batches.retry_failed(ref.batch_id) == 1
    record = rt.ledger.jobs.get(ref)  # dispatched again at once, as a new attempt
    assert (record.state, record.error, record.attempt) == (JobState.DISPATCHED, None, 2)
    fake.submit_status = 200
    assert submit(rt, ref) is JobState.AWAITING_RESULT
    assert rt.ledger.batches.retry_failed(ref.batch_id) == 0


def test_budget_caps_submissions_and_skips_the_rest(rt, new_job, fake):
    # Price the estimate like the fake provider charges (4.5 credits a job).
    priced = dataclasses.replace(
        rt,
        settings=dataclasses.replace(rt.settings, price_credits_per_mp=4.5 / (64 * 48 / 1_000_000)),
    )
    first = new_job()
    specs = [rt.ledger.jobs.get(first).spec]
    specs += [
        dataclasses.replace(specs[0], ref=JobRef(first.batch_id + "-b", f"j{n}")) for n in range(3)
    ]
    batch_id = specs[1].ref.batch_id
    rt.ledger.batches.create(batch_id, specs[1:], budget_credits=10.0)
    states = [submit(priced, spec.ref) for spec in specs[1:]]
    assert states == [JobState.AWAITING_RESULT, JobState.AWAITING_RESULT, JobState.SKIPPED_BUDGET]
    assert len(fake.submits) == 2
    summary = rt.ledger.batches.summary(batch_id)
    assert summary.cost_credits == 9.0 <= summary.budget_credits
    assert "budget" in rt.ledger.jobs.get(specs[3].ref).error


def test_results_manifest_is_refreshed_while_the_batch_runs(rt, new_job, fake):
    first = submitted(rt, new_job, fake)
    spec = rt.ledger.jobs.get(first).spec
    batch_id = first.batch_id + "-r"
    specs = [dataclasses.replace(spec, ref=JobRef(batch_id, name)) for name in ("a", "b")]
    rt.ledger.batches.create(batch_id, specs)
    for each in specs:
        submit(rt, each.ref)
    collect_job(rt, specs[0].ref, 1)
    assert reports.job_ended(rt, batch_id) is None  # one job still running
    assert batch_id in reports.refresh_stale_results(rt)
    uri = S3Uri.parse(f"s3://{rt.settings.bucket}/outputs/{batch_id}/results.jsonl")
    states = [
        json.loads(line)["state"]
        for line in rt.storage.read(uri, max_bytes=1 << 16).decode().splitlines()
    ]
    assert states == ["stored", "awaiting_result"]
    assert batch_id not in reports.refresh_stale_results(rt)
    collect_job(rt, specs[1].ref, 1)
    assert reports.job_ended(rt, batch_id) == uri


def test_a_retried_job_never_polls_its_last_attempts_task(rt, new_job, fake, clock):
    ref = submitted(rt, new_job, fake)
    fake.status = "Error"
    assert collect_job(rt, ref, 1) is JobState.FAILED
    assert rt.ledger.batches.retry_failed(ref.batch_id) == 1
    fake.submit_status = 500  # the new attempt's POST is ambiguous: no task of its own

    assert submit(rt, ref) is JobState.AWAITING_RESULT

    record = rt.ledger.jobs.get(ref)
    assert (record.attempt, record.provider_task_id, record.polling_url) == (2, None, None)
    clock.now += rt.settings.deadlines.ambiguous_submit_s + 1
    assert ref in sweep(rt).requeued  # nothing named it: a new attempt, not attempt 1's task
