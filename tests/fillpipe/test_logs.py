"""The services' log lines: JSON or text, the job's ids on each, secrets redacted."""

from __future__ import annotations

import io
import json
import logging
import threading
import warnings
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from celery.signals import task_postrun, task_prerun

from fillpipe.logs import (
    CALLBACK_PATH_SHOWN,
    REDACTED,
    SecretRedactor,
    configure_logging,
    log_format,
    secret_values,
)
from pipeline.errors import ConfigError
from pipeline.logcontext import add_to_job_context, current_job_context, job_context
from pipeline.settings import Settings
from workers.tasks import collect, reconcile

pytestmark = pytest.mark.timeout(10)

SIGNING_KEY = "k" * 40
NOTIFY_SECRET = "whsec_" + "bm90aWZ5LXNlY3JldC1rZXktMTIzNDU2Nzg5MA=="
ENVIRON = {
    "FILLPIPE_REDIS_URL": "redis://:p%40ss-word9@127.0.0.1:6379/0",
    "FILLPIPE_PROVIDER_URL": "http://127.0.0.1:9",
    "FILLPIPE_PROVIDER_KEY": "provider-key-1",
    "FILLPIPE_SIGNING_KEY": f"{SIGNING_KEY},{'o' * 40}",
    "FILLPIPE_EVENTS_TOKEN": "events-token-1",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-1",
    "FILLPIPE_NOTIFY_SECRET": NOTIFY_SECRET,
    "FILLPIPE_DASHBOARD_TOKEN": "dashboard-token-" + "d" * 16,
}


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def root_logger() -> Iterator[None]:
    """Each test configures the root logger as a service does; it is put back after."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.captureWarnings(False)


def logged(fmt: str, settings: Settings | None = None) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    configure_logging(settings=settings, environ={"FILLPIPE_LOG_FORMAT": fmt}, stream=stream)
    return logging.getLogger("fillpipe.test"), stream


def json_lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_json_lines_carry_time_level_logger_message_and_the_jobs_ids():
    log, stream = logged("json")
    with job_context(batch="b1", job="j1", attempt=2, celery_task="c-9"):
        log.info("submitted %s", "j1")
    log.warning("outside é")
    inside, outside = json_lines(stream)
    assert inside == {
        "time": inside["time"],
        "level": "INFO",
        "logger": "fillpipe.test",
        "message": "submitted j1",
        "batch": "b1",
        "job": "j1",
        "attempt": 2,
        "celery_task": "c-9",
    }
    assert datetime.fromisoformat(str(inside["time"])).utcoffset() == timedelta(0)
    assert list(inside)[:4] == ["time", "level", "logger", "message"]
    assert {k: outside[k] for k in ("level", "message")} == {
        "level": "WARNING",
        "message": "outside é",
    }
    assert "batch" not in outside


def test_json_lines_carry_the_exception_text():
    log, stream = logged("json")
    try:
        raise ValueError("bad value")
    except ValueError:
        log.exception("it failed")
    (line,) = json_lines(stream)
    assert line["message"] == "it failed"
    assert "Traceback" in str(line["exception"]) and "ValueError: bad value" in str(
        line["exception"]
    )


def test_text_lines_keep_the_format_and_add_the_ids_when_set():
    log, stream = logged("text")
    with job_context(batch="b1", job="j1", attempt=1):
        add_to_job_context(provider_task="t-7")
        log.info("collected")
    log.info("plain")
    inside, outside = stream.getvalue().splitlines()
    assert inside.endswith(
        " INFO fillpipe.test: collected [batch=b1 job=j1 attempt=1 provider_task=t-7]"
    )
    assert outside.endswith(" INFO fillpipe.test: plain")


def test_the_format_follows_the_setting_else_whether_stderr_is_a_terminal():
    assert log_format({"FILLPIPE_LOG_FORMAT": "JSON"}, Terminal()) == "json"
    assert log_format({"FILLPIPE_LOG_FORMAT": "text"}, io.StringIO()) == "text"
    assert log_format({}, Terminal()) == "text"
    assert log_format({"FILLPIPE_LOG_FORMAT": " "}, io.StringIO()) == "json"
    with pytest.raises(ConfigError, match="FILLPIPE_LOG_FORMAT='yaml'"):
        log_format({"FILLPIPE_LOG_FORMAT": "yaml"}, io.StringIO())


def test_configuring_again_replaces_the_handler():
    _, first = logged("text")
    log, second = logged("json")
    log.info("once")
    assert first.getvalue() == ""
    assert [line["message"] for line in json_lines(second)] == ["once"]


def test_warnings_are_logged_in_the_same_format():
    _, stream = logged("json")
    warnings.warn("careful", UserWarning, stacklevel=1)
    (line,) = json_lines(stream)
    assert line["logger"] == "py.warnings" and "careful" in str(line["message"])


def test_ids_end_with_their_block_and_stay_in_their_thread():
    seen: list[object] = []
    with job_context(batch="b1", job="j1", attempt=1):
        add_to_job_context(provider_task="t-1")
        thread = threading.Thread(target=lambda: seen.append(dict(current_job_context())))
        thread.start()
        thread.join()
        with job_context(job="j2"):
            assert current_job_context()["job"] == "j2"
        assert dict(current_job_context()) == {
            "batch": "b1",
            "job": "j1",
            "attempt": 1,
            "provider_task": "t-1",
        }
    assert seen == [{}]
    add_to_job_context(provider_task="t-2")  # outside any job: nothing to add it to
    assert dict(current_job_context()) == {}


def test_celery_tasks_of_a_job_run_in_its_context():
    """The worker's prerun/postrun receivers: a collect's lines (Celery's own included)
    name its job and Celery task; the reconcile sweep's name none."""
    task_prerun.send(sender=collect, task_id="c-1", task=collect, args=["b1", "j1", 3], kwargs={})
    try:
        assert dict(current_job_context()) == {
            "batch": "b1",
            "job": "j1",
            "attempt": 3,
            "celery_task": "c-1",
        }
    finally:
        task_postrun.send(sender=collect, task_id="c-1", task=collect, args=[], kwargs={})
    assert dict(current_job_context()) == {}
    task_prerun.send(sender=reconcile, task_id="r-1", task=reconcile, args=[], kwargs={})
    assert dict(current_job_context()) == {}
    task_postrun.send(sender=reconcile, task_id="r-1", task=reconcile, args=[], kwargs={})


def test_secrets_are_redacted_from_messages_arguments_and_exceptions():
    settings = Settings.from_environ(ENVIRON)
    log, stream = logged("json", settings)
    log.info("key %s and %r", "provider-key-1", {"password": "p@ss-word9"})
    log.info("signing with " + SIGNING_KEY)
    try:
        raise RuntimeError("cannot reach redis://:p%40ss-word9@127.0.0.1:6379/0")
    except RuntimeError:
        log.exception("redis down")
    log.info("POST /v1/callbacks/bfl/eyJhbGci.abc-DEF_123?x=1 HTTP/1.1")
    text = stream.getvalue()
    for secret in secret_values(settings):
        assert secret not in text
    first, second, third, fourth = json_lines(stream)
    assert first["message"] == f"key {REDACTED} and {{'password': '{REDACTED}'}}"
    assert second["message"] == f"signing with {REDACTED}"
    assert f"redis://:{REDACTED}@127.0.0.1" in str(third["exception"])
    assert fourth["message"] == f"POST {CALLBACK_PATH_SHOWN}?x=1 HTTP/1.1"


def test_secret_values_are_every_accounts_key_and_each_configured_secret(tmp_path: Path):
    accounts = tmp_path / "accounts.toml"
    accounts.write_text(
        '[accounts.a]\nbase_url = "http://127.0.0.1:9"\nkey_env = "KEY_A"\n'
        '[accounts.b]\nbase_url = "http://127.0.0.1:9"\nkey_env = "KEY_B"\n'
    )
    environ = {**ENVIRON, "FILLPIPE_ACCOUNTS_FILE": str(accounts)}
    environ.update(KEY_A="key-of-a-123", KEY_B="key-of-b-456")
    assert set(secret_values(Settings.from_environ(environ))) == {
        "key-of-a-123",
        "key-of-b-456",
        SIGNING_KEY,
        "o" * 40,
        "events-token-1",
        "aws-secret-1",
        NOTIFY_SECRET,
        "dashboard-token-" + "d" * 16,
        "p%40ss-word9",
        "p@ss-word9",
    }


def test_values_too_short_to_search_for_are_left_alone():
    redactor = SecretRedactor(["abc", "", "longer-secret"])
    assert redactor.redact("abc: longer-secret") == f"abc: {REDACTED}"
