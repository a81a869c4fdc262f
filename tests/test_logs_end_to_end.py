"""Structured logs on a whole embedded stack (`FILLPIPE_LOG_FORMAT=json`): every line the
services write is one JSON object (but the launcher's own start lines); one job's ids
follow it through its submit, its callback and its collect; and no secret appears in
any log.

A stack of its own, so its logs hold this module's batch only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from fillpipe.samples import make_samples
from fillpipe.stack import EmbeddedStack
from pipeline.models import JobRef
from pipeline.runtime import Runtime
from pipeline.settings import Settings
from pipeline.states import JobState
from tests.conftest import STACK_EMULATOR_ENV
from tests.stacks import (
    hermetic_environ,
    running_stack,
    train_finetune,
    upload_batch,
    wait_until_done,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

JOBS = 2
DEADLINE_S = 120.0
# What the launcher writes before each start of a service (`fillpipe.processes`).
LAUNCHER_LINE = re.compile(r"--- fillpipe: starting \w+ at .+ ---")
JSON_SERVICES = ("worker", "receiver", "beat", "emulator")
Record = dict[str, Any]


@pytest.fixture(scope="module")
def json_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EmbeddedStack]:
    environ = {**hermetic_environ(), "FILLPIPE_LOG_FORMAT": "json"}
    root = tmp_path_factory.mktemp("json-logs-stack")
    with running_stack(request, root, environ, STACK_EMULATOR_ENV) as embedded:
        yield embedded


@pytest.fixture(scope="module")
def finished_job(json_stack: EmbeddedStack) -> tuple[JobRef, str]:
    """A batch of `JOBS` run to the end; its first job and that job's provider task."""
    rt = Runtime.from_settings(Settings.from_environ(json_stack.env))
    try:
        finetune_id = train_finetune(rt)
        samples = make_samples(JOBS, size_px=256)
        batch_id, specs = upload_batch(rt, finetune_id, samples, tags={"suite": "logs"})
        summary = wait_until_done(rt.ledger, batch_id, timeout_s=DEADLINE_S)
        assert summary.counts == {JobState.STORED: JOBS}
        record = rt.ledger.jobs.get(specs[0].ref)
        assert record is not None and record.provider_task_id
        return specs[0].ref, record.provider_task_id
    finally:
        rt.close()


def test_every_service_line_is_one_json_object(json_stack, finished_job):
    for service in JSON_SERVICES:
        records = json_records(json_stack.log_path(service))
        assert records, f"{service} logged nothing"
        for record in records:
            assert {"time", "level", "logger", "message"} <= set(record), record
            assert datetime.fromisoformat(record["time"]).utcoffset() == timedelta(0)


def test_one_job_is_followed_through_submit_callback_and_collect(json_stack, finished_job):
    ref, provider_task = finished_job
    ids = {"batch": ref.batch_id, "job": ref.job_id, "attempt": 1}
    worker = json_records(json_stack.log_path("worker"))
    receiver = json_records(json_stack.log_path("receiver"))
    # Celery says which of its tasks were this job's as it receives them (in its
    # consumer thread, before any job context).
    tasks = {
        record["data"]["id"]: record["data"]["name"]
        for record in worker
        if record["message"].endswith(" received") and repr(ref.job_id) in record["data"]["args"]
    }
    assert sorted(tasks.values()) == ["fillpipe.collect", "fillpipe.submit"]
    path = [r for r in worker if not r["message"].endswith(" received") and _names(r, tasks)]
    assert {_names(r, tasks) for r in path} == set(tasks)  # each task's end is logged
    for record in path:
        task = _names(record, tasks)
        assert _ids(record) == {**ids, "celery_task": task, "provider_task": provider_task}
    callbacks = [r for r in receiver if r["message"].startswith(f"callback for {ref} ")]
    assert len(callbacks) == 1
    assert _ids(callbacks[0]) == {**ids, "provider_task": provider_task}
    for record in worker + receiver:  # no line names the job with another's ids
        if record.get("job") == ref.job_id:
            assert {name: record.get(name) for name in ids} == ids
            assert record.get("provider_task", provider_task) == provider_task


def test_no_secret_or_callback_token_in_any_log(json_stack, finished_job):
    env = json_stack.env
    secrets = {
        "provider key": env["FILLPIPE_PROVIDER_KEY"],
        "signing key": env["FILLPIPE_SIGNING_KEY"],
        "AWS secret": env["AWS_SECRET_ACCESS_KEY"],
        "Redis password": urlsplit(env["FILLPIPE_REDIS_URL"]).password,
    }
    logs = {log.name: log.read_text() for log in json_stack.state.logs.glob("*.log")}
    assert {f"{service}.log" for service in JSON_SERVICES} <= set(logs)
    for name, secret in secrets.items():
        assert secret and len(secret) >= 8, name
        for log_name, text in logs.items():
            assert secret not in text, f"the {name} appears in {log_name}"
    for log_name, text in logs.items():
        tokens = re.findall(r"/v1/callbacks/bfl/([^\s\"'/?#]+)", text)
        assert set(tokens) <= {"<token>"}, f"a callback token appears in {log_name}"


def json_records(path: Path) -> list[Record]:
    """Every line of a service's log as JSON, but the launcher's start lines."""
    records = []
    for line in path.read_text().splitlines():
        if LAUNCHER_LINE.fullmatch(line):
            continue
        record = json.loads(line)
        assert isinstance(record, dict), line
        records.append(record)
    return records


def _names(record: Record, tasks: dict[str, str]) -> str | None:
    """The id of the Celery task of `tasks` the record's message names, if any."""
    return next((task for task in tasks if task in record["message"]), None)


def _ids(record: Record) -> dict[str, Any]:
    names = ("batch", "job", "attempt", "provider_task", "celery_task")
    return {name: record[name] for name in names if name in record}
