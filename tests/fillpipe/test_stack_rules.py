"""The embedded stack with trigger rules: the listing watcher runs, and the receiver
takes storage events with the token it generated."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest

from fillpipe.stack import EmbeddedStack
from pipeline.errors import RulesInvalid
from tests.fillpipe.test_stack import external_servers
from tests.triggers.conftest import retouch_rule

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def test_with_rules_a_watcher_runs_and_the_receiver_takes_events(
    tmp_path: Path, clean_environ: dict[str, str], valkey_url: str, s3_env: dict[str, str]
) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(retouch_rule(f"incoming-{uuid.uuid4().hex[:8]}/"))
    given = {
        **external_servers(clean_environ, valkey_url, s3_env),
        "FILLPIPE_RULES_FILE": str(rules),
    }

    with EmbeddedStack(tmp_path / "state", given, services=("receiver", "watcher")) as stack:
        assert set(stack.pids) == {"receiver", "watcher"}  # the watcher answered its health
        env = stack.env
        assert env["FILLPIPE_RULES_FILE"] == str(rules.resolve())
        token = env["FILLPIPE_EVENTS_TOKEN"]
        assert token == (tmp_path / "state" / "events_token").read_text().strip()
        route = f"{env['FILLPIPE_RECEIVER_URL']}/v1/events/s3"
        test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "fillpipe"}
        with httpx.Client(timeout=10, trust_env=False) as client:
            assert client.head(route).status_code == 200
            assert client.post(route, json=test_event).status_code == 401
            answer = client.post(
                route, json=test_event, headers={"Authorization": f"Bearer {token}"}
            )
        assert answer.json() == {"status": "ok", "events": 0, "jobs": 0}


def test_bad_rules_stop_the_stack_before_anything_starts(
    tmp_path: Path, clean_environ: dict[str, str]
) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rules]]\nname = "x"\n')

    with pytest.raises(RulesInvalid) as invalid:
        EmbeddedStack(tmp_path / "state", {**clean_environ, "FILLPIPE_RULES_FILE": str(rules)})

    assert "bucket: is required" in str(invalid.value)
    assert not (tmp_path / "state").exists()
