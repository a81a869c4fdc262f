"""The listing poller against SeaweedFS (which sends no notifications)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from pipeline.ledger import Ledger
from pipeline.settings import Settings
from pipeline.states import JobState
from pipeline.storage import S3Uri, Storage
from pipeline.triggers.intake import TriggerIntake, rolling_batch_id
from pipeline.triggers.listing import ListingPoller
from pipeline.triggers.rules import parse_rules
from tests.pipeline.fakes import png
from tests.triggers.conftest import retouch_rule

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@pytest.fixture
def prefix() -> str:
    return f"listed-{uuid.uuid4().hex[:8]}/"


@pytest.fixture
def ledger(seaweed_settings: Settings) -> Iterator[Ledger]:
    own = Ledger.from_settings(seaweed_settings)
    yield own
    own.close()


@pytest.fixture
def make_poller(ledger, seaweed_storage, prefix):
    rules = parse_rules(retouch_rule(prefix), source="rules.toml")
    intake = TriggerIntake(rules, ledger=ledger, storage=seaweed_storage, mask_wait_s=60)

    def make(backfill: bool = False) -> ListingPoller:
        cursor = ledger.triggers.listing("fillpipe", prefix)
        return ListingPoller(
            intake, seaweed_storage, cursor, bucket="fillpipe", prefix=prefix, backfill=backfill
        )

    return make


def put(storage: Storage, key: str, body: bytes | None = None) -> None:
    storage.write(S3Uri("fillpipe", key), body or png(), content_type="image/png")


def jobs(ledger: Ledger) -> dict[str, JobState]:
    batch = rolling_batch_id("retouch", time.time())
    return {record.spec.image_uri: record.state for record in ledger.jobs.of_batch(batch)}


def test_the_first_listing_takes_what_is_there_as_seen(
    make_poller, ledger, seaweed_storage, prefix
):
    put(seaweed_storage, f"{prefix}old.mask.png", png(mode="L"))
    put(seaweed_storage, f"{prefix}old.png")
    poller = make_poller()
    assert poller.poll() == 0

    put(seaweed_storage, f"{prefix}new.mask.png", png(mode="L"))
    put(seaweed_storage, f"{prefix}new.png")
    assert poller.poll() == 2
    assert poller.poll() == 0

    assert jobs(ledger) == {f"s3://fillpipe/{prefix}new.png": JobState.DISPATCHED}


def test_backfill_hands_on_what_is_there(make_poller, ledger, seaweed_storage, prefix):
    put(seaweed_storage, f"{prefix}old.mask.png", png(mode="L"))
    put(seaweed_storage, f"{prefix}old.png")

    make_poller(backfill=True).poll()

    assert jobs(ledger) == {f"s3://fillpipe/{prefix}old.png": JobState.DISPATCHED}


def test_the_cursor_survives_a_restart_and_sees_overwrites(
    make_poller, ledger, seaweed_storage, prefix
):
    make_poller().poll()
    put(seaweed_storage, f"{prefix}a.mask.png", png(mode="L"))
    put(seaweed_storage, f"{prefix}a.png")
    make_poller().poll()

    restarted = make_poller()
    assert restarted.poll() == 0
    put(seaweed_storage, f"{prefix}a.png", png(color=(9, 9, 9)))
    assert restarted.poll() == 1

    batch = rolling_batch_id("retouch", time.time())
    assert [r.state for r in ledger.jobs.of_batch(batch)] == [JobState.DISPATCHED] * 2


def test_keys_with_spaces_plus_percent_and_unicode(make_poller, ledger, seaweed_storage, prefix):
    make_poller().poll()
    keys = [f"{prefix}a b.png", f"{prefix}c+d.png", f"{prefix}50%.png", f"{prefix}ü/ñ.png"]
    for key in keys:
        put(seaweed_storage, key.replace(".png", ".mask.png"), png(mode="L"))
        put(seaweed_storage, key)

    make_poller().poll()

    assert jobs(ledger) == {f"s3://fillpipe/{key}": JobState.DISPATCHED for key in keys}
