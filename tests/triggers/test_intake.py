"""The trigger intake against the session's Valkey and SeaweedFS: jobs once per event,
masks awaited, fillpipe's own outputs never retriggering."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from pipeline.errors import ConfigError
from pipeline.ledger import Ledger, PoolLimits, redis_client
from pipeline.models import JobRef
from pipeline.settings import Settings
from pipeline.states import JobState
from pipeline.storage import S3Uri, Storage
from pipeline.triggers.events import ObjectEvent
from pipeline.triggers.intake import TriggerIntake, rolling_batch_id
from pipeline.triggers.masks import settle_overdue
from pipeline.triggers.rules import parse_rules
from tests.pipeline.conftest import Clock
from tests.pipeline.fakes import png
from tests.triggers.conftest import retouch_rule

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

MASK_WAIT_S = 60.0


@pytest.fixture
def prefix() -> str:
    return f"incoming-{uuid.uuid4().hex[:8]}/"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ledger(seaweed_settings: Settings, clock: Clock) -> Iterator[Ledger]:
    own = Ledger.from_settings(seaweed_settings, clock=clock)
    yield own
    own.close()


@pytest.fixture
def intake(ledger: Ledger, seaweed_storage: Storage, prefix: str, clock: Clock) -> TriggerIntake:
    rules = parse_rules(retouch_rule(prefix), source="rules.toml")
    return TriggerIntake(
        rules, ledger=ledger, storage=seaweed_storage, mask_wait_s=MASK_WAIT_S, clock=clock
    )


def put(storage: Storage, key: str, body: bytes | None = None) -> ObjectEvent:
    """Put an object; the event S3 would send for it."""
    storage.write(S3Uri("fillpipe", key), body or png(), content_type="image/png")
    head = storage.head(S3Uri("fillpipe", key))
    assert head is not None
    return ObjectEvent("fillpipe", key, etag=head.etag, origin="test")


def states(ledger: Ledger, clock: Clock) -> dict[str, JobState]:
    batch = rolling_batch_id("retouch", clock())
    return {record.spec.image_uri: record.state for record in ledger.jobs.of_batch(batch)}


def test_an_image_with_its_mask_becomes_one_queued_job_in_the_rules_batch(
    intake, ledger, seaweed_storage, prefix, clock
):
    mask = put(seaweed_storage, f"{prefix}shoes/red boot+1.mask.png", png(mode="L"))
    image = put(seaweed_storage, f"{prefix}shoes/red boot+1.png")

    outcomes = intake.handle([mask, image])

    assert [outcome.result for outcome in outcomes] == ["mask", "queued"]
    job = outcomes[1].job
    assert job is not None and job.batch_id == rolling_batch_id("retouch", clock())
    record = ledger.jobs.get(job)
    assert record is not None
    assert record.spec.mask_uri == f"s3://fillpipe/{prefix}shoes/red boot+1.mask.png"
    assert record.spec.output_uri == f"s3://fillpipe/{prefix}edited/red boot+1.png"
    assert record.spec.tags == {"campaign": "spring"}
    assert record.spec.origin["rule"] == "retouch"
    assert record.spec.origin["via"] == "test"
    summary = ledger.batches.summary(job.batch_id)
    assert summary is not None and summary.source == "rule:retouch" and summary.total == 1


def test_a_redelivered_event_records_nothing_twice_and_an_overwrite_is_a_new_job(
    intake, ledger, seaweed_storage, prefix, clock
):
    put(seaweed_storage, f"{prefix}a.mask.png", png(mode="L"))
    first = put(seaweed_storage, f"{prefix}a.png")
    assert [o.result for o in intake.handle([first])] == ["queued"]
    assert [o.result for o in intake.handle([first, first])] == ["duplicate", "duplicate"]

    second = put(seaweed_storage, f"{prefix}a.png", png(color=(1, 2, 3)))
    # The first event, delivered late, now names an object that is no longer there.
    assert [o.result for o in intake.handle([second, first])] == ["queued", "overwritten"]
    assert len(list(ledger.jobs.of_batch(rolling_batch_id("retouch", clock())))) == 2


def test_an_older_event_by_sequencer_is_stale(intake, seaweed_storage, prefix):
    put(seaweed_storage, f"{prefix}b.mask.png", png(mode="L"))
    event = put(seaweed_storage, f"{prefix}b.png")
    newer = ObjectEvent(event.bucket, event.key, etag=event.etag, sequencer="0062A1B2C3D4E5F6")
    older = ObjectEvent(event.bucket, event.key, etag=event.etag, sequencer="0062A1B2C3D4E5")

    assert [o.result for o in intake.handle([newer, older, newer])] == [
        "queued",
        "stale",
        "duplicate",
    ]


def test_new_content_is_never_judged_by_sequencer(intake, seaweed_storage, prefix):
    # Sequencers of different servers (MinIO nodes) need not agree: an overwrite whose
    # event carries a smaller sequencer is still the current object, as the HEAD shows.
    put(seaweed_storage, f"{prefix}k.mask.png", png(mode="L"))
    first = put(seaweed_storage, f"{prefix}k.png")
    (recorded,) = intake.handle(
        [ObjectEvent(first.bucket, first.key, etag=first.etag, sequencer="17F0000000000200")]
    )
    second = put(seaweed_storage, f"{prefix}k.png", png(color=(4, 5, 6)))

    (overwrite,) = intake.handle(
        [ObjectEvent(second.bucket, second.key, etag=second.etag, sequencer="17F0000000000100")]
    )

    assert (recorded.result, overwrite.result) == ("queued", "queued")


def test_an_image_before_its_mask_waits_and_the_mask_releases_it(
    intake, ledger, seaweed_storage, prefix, clock
):
    image = put(seaweed_storage, f"{prefix}c.png")
    (waiting,) = intake.handle([image])
    assert waiting.result == "awaiting_mask"
    assert states(ledger, clock) == {f"s3://fillpipe/{prefix}c.png": JobState.AWAITING_MASK}

    mask = put(seaweed_storage, f"{prefix}c.mask.png", png(mode="L"))
    (released,) = intake.handle([mask])

    assert released.result == "mask" and released.job is None
    assert states(ledger, clock) == {f"s3://fillpipe/{prefix}c.png": JobState.DISPATCHED}


def test_a_mask_that_never_lands_fails_the_job_with_the_reason(
    intake, ledger, seaweed_storage, prefix, clock
):
    (waiting,) = intake.handle([put(seaweed_storage, f"{prefix}d.png")])
    assert waiting.job is not None
    clock.now += MASK_WAIT_S + 1
    assert ledger.jobs.late(clock()) == [waiting.job]

    record = ledger.jobs.get(waiting.job)
    assert record is not None
    assert not settle_overdue(ledger, seaweed_storage, record, MASK_WAIT_S)

    failed = ledger.jobs.get(waiting.job)
    assert failed is not None and failed.state is JobState.FAILED
    assert failed.error is not None
    assert f"s3://fillpipe/{prefix}d.mask.png did not land within 60 s" in failed.error
    assert ledger.triggers.waiting_for(f"s3://fillpipe/{prefix}d.mask.png") == []


def test_a_mask_whose_event_was_missed_is_found_at_the_deadline(
    intake, ledger, seaweed_storage, prefix, clock
):
    (waiting,) = intake.handle([put(seaweed_storage, f"{prefix}e.png")])
    put(seaweed_storage, f"{prefix}e.mask.png", png(mode="L"))  # its event never comes
    clock.now += MASK_WAIT_S + 1
    record = ledger.jobs.get(waiting.job or JobRef("", ""))
    assert record is not None

    assert settle_overdue(ledger, seaweed_storage, record, MASK_WAIT_S)
    assert states(ledger, clock) == {f"s3://fillpipe/{prefix}e.png": JobState.DISPATCHED}


def put_output(storage: Storage, key: str) -> ObjectEvent:
    """An object as fillpipe's collect writes it: tagged, with its provenance metadata."""
    storage.put_new(
        S3Uri("fillpipe", key),
        png(),
        content_type="image/png",
        tags={"fillpipe-batch": "b20260101-00000000"},
        metadata={"fillpipe-job": "f-1", "fillpipe-batch": "b20260101-00000000"},
    )
    head = storage.head(S3Uri("fillpipe", key))
    assert head is not None
    return ObjectEvent("fillpipe", key, etag=head.etag)


def test_outputs_never_retrigger_even_inside_the_rules_prefix(intake, seaweed_storage, prefix):
    # The rule's own outputs match its output template; any batch's outputs (a manifest
    # may write anywhere) carry fillpipe's metadata.
    own = put_output(seaweed_storage, f"{prefix}edited/f.png")
    other = put_output(seaweed_storage, f"{prefix}from-a-manifest/g.png")

    results = [outcome.result for outcome in intake.handle([own, other])]

    assert results == ["no-rule", "own-output"]


def test_events_that_make_no_job(intake, seaweed_storage, prefix):
    elsewhere = put(seaweed_storage, f"other-{prefix}g.png")
    wrong_suffix = put(seaweed_storage, f"{prefix}g.jpg")
    gone = ObjectEvent("fillpipe", f"{prefix}never-put.png", etag="abc")

    results = [o.result for o in intake.handle([elsewhere, wrong_suffix, gone])]

    assert results == ["no-rule", "no-rule", "gone"]


def test_a_cancelled_rolling_batch_records_later_jobs_as_cancelled(
    intake, ledger, seaweed_storage, prefix, clock
):
    put(seaweed_storage, f"{prefix}h.mask.png", png(mode="L"))
    put(seaweed_storage, f"{prefix}i.mask.png", png(mode="L"))
    intake.handle([put(seaweed_storage, f"{prefix}h.png")])
    ledger.batches.cancel(rolling_batch_id("retouch", clock()))

    (later,) = intake.handle([put(seaweed_storage, f"{prefix}i.png")])

    assert later.result == "cancelled"


def test_a_rule_naming_its_account_puts_its_jobs_in_that_accounts_pool(
    valkey_url, seaweed_storage, prefix, clock
):
    pools = {"brand-a": PoolLimits(2), "brand-b": PoolLimits(3)}
    ledger = Ledger(redis_client(valkey_url), pools=pools, clock=clock, prefix=f"{prefix}:")
    text = retouch_rule(prefix) + 'account = "brand-b"\n'
    rules = parse_rules(text, source="rules.toml")
    assert rules.rules[0].account == "brand-b"
    intake = TriggerIntake(
        rules, ledger=ledger, storage=seaweed_storage, mask_wait_s=MASK_WAIT_S, clock=clock
    )
    put(seaweed_storage, f"{prefix}cup.mask.png", png(mode="L"))

    (outcome,) = intake.handle([put(seaweed_storage, f"{prefix}cup.png")])

    assert outcome.job is not None
    assert ledger.jobs.get(outcome.job).account == "brand-b"
    assert [entry.ref for entry in ledger.outbox.waiting()] == [outcome.job]  # brand-b's slot
    unknown = parse_rules(retouch_rule(prefix) + 'account = "brand-z"\n', source="rules.toml")
    with pytest.raises(ConfigError, match=r"names account 'brand-z'.*configured: brand-a, brand-b"):
        TriggerIntake(unknown, ledger=ledger, storage=seaweed_storage, mask_wait_s=MASK_WAIT_S)
    ledger.close()
