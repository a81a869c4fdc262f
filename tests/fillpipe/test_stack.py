"""The embedded stack against its real servers: start, answer, stop without leftovers."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import httpx
import pytest
import redis
from botocore.config import Config
from botocore.exceptions import ClientError

from fillpipe.processes import group_members
from fillpipe.stack import EmbeddedStack, StackError, read_env_file
from pipeline.settings import Settings

ALL_SERVICES = {"valkey", "s3", "emulator", "receiver", "worker", "beat", "dashboard"}
SECRET_NAMES = (
    "FILLPIPE_SIGNING_KEY",
    "FILLPIPE_PROVIDER_KEY",
    "AWS_SECRET_ACCESS_KEY",
    "FILLPIPE_EMULATOR_ADMIN_TOKEN",
    "FILLPIPE_DASHBOARD_TOKEN",
)


def wait_for(condition: Callable[[], bool], *, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def no_process_left(pids: dict[str, int]) -> bool:
    return not any(group_members(pid) for pid in pids.values())


def s3_client(env: dict[str, str]) -> Any:
    return boto3.session.Session().client(
        "s3",
        endpoint_url=env["FILLPIPE_S3_ENDPOINT_URL"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        config=Config(region_name="us-east-1", s3={"addressing_style": "path"}),
    )


def healthy(url: str) -> bool:
    return httpx.get(f"{url}/healthz", timeout=5).status_code == 200


def start_up(state: Path, environ: dict[str, str]) -> subprocess.Popen[bytes]:
    """`fillpipe up --state-dir STATE` in its own session, output captured."""
    return subprocess.Popen(
        [sys.executable, "-m", "fillpipe", "up", "--state-dir", str(state)],
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_for_pids(up: subprocess.Popen[bytes], state: Path) -> dict[str, int]:
    """Once `up` wrote stack.env: the pids it reports in stack.pids."""
    wait_for(
        lambda: (state / "stack.env").exists() or up.poll() is not None,
        timeout_s=150,
        what="stack.env",
    )
    assert up.poll() is None, up.stdout.read().decode() if up.stdout else ""
    return dict(json.loads((state / "stack.pids").read_text()))


def stop_up(up: subprocess.Popen[bytes]) -> None:
    """Stop `up` only if a failed test left it running: politely first, so it stops its
    servers, then by force."""
    if up.poll() is None:
        up.send_signal(signal.SIGTERM)
        try:
            up.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(up.pid, signal.SIGKILL)
            up.wait()


# -- without servers --------------------------------------------------------------------


@pytest.mark.timeout(10)
def test_read_env_file_undoes_shell_quoting(tmp_path: Path) -> None:
    (tmp_path / "stack.env").write_text(
        "# comment\nexport A='it'\"'\"'s a $value'\nexport B=plain\nnot a setting\n"
    )
    assert read_env_file(tmp_path) == {"A": "it's a $value", "B": "plain"}
    assert read_env_file(tmp_path / "missing") is None


@pytest.mark.timeout(10)
def test_stack_error_pickles_and_names_the_service() -> None:
    error = StackError("s3", "exited during start-up", "last line")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.service, copy.problem, copy.log_tail) == (
        "s3",
        "exited during start-up",
        "last line",
    )
    assert str(copy).startswith("s3: exited during start-up")


@pytest.mark.timeout(10)
def test_unknown_service_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="flower"):
        EmbeddedStack(tmp_path, {}, services=("flower",))


# -- servers ----------------------------------------------------------------------------


def external_servers(
    environ: dict[str, str], valkey_url: str, s3_env: dict[str, str]
) -> dict[str, str]:
    """Settings naming Redis, S3 and a provider that already exist: none is embedded."""
    return {
        **environ,
        **s3_env,
        "FILLPIPE_REDIS_URL": valkey_url,
        "FILLPIPE_PROVIDER_URL": "https://api.us1.bfl.ai",
        "FILLPIPE_PROVIDER_KEY": "k",
    }


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_valkey_answers_with_aof_and_noeviction(valkey_url: str) -> None:
    client = redis.Redis.from_url(valkey_url)
    try:
        assert client.ping()
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
    finally:
        client.close()


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_valkey_refuses_clients_without_the_password(valkey_url: str) -> None:
    parts = urlsplit(valkey_url)
    anonymous = redis.Redis(host=parts.hostname or "", port=parts.port or 0)
    try:
        with pytest.raises(redis.AuthenticationError):
            anonymous.ping()
    finally:
        anonymous.close()


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_s3_put_with_tags_and_if_none_match(s3_env: dict[str, str]) -> None:
    client = s3_client(s3_env)
    bucket, key = s3_env["FILLPIPE_BUCKET"], "tests/stack/tagged.txt"
    client.put_object(
        Bucket=bucket, Key=key, Body=b"one", Tagging="fillpipe-job=1", IfNoneMatch="*"
    )
    with pytest.raises(ClientError) as refused:
        client.put_object(Bucket=bucket, Key=key, Body=b"two", IfNoneMatch="*")
    assert refused.value.response["Error"]["Code"] == "PreconditionFailed"
    assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == b"one"
    tags = client.get_object_tagging(Bucket=bucket, Key=key)["TagSet"]
    assert tags == [{"Key": "fillpipe-job", "Value": "1"}]


# -- stacks -----------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_full_stack_starts_writes_stack_env_and_stops_without_leftovers(
    tmp_path: Path, clean_environ: dict[str, str]
) -> None:
    stack = EmbeddedStack(tmp_path / "state", clean_environ)
    try:
        stack.start(timeout_s=120)
        env_file = stack.write_env_file()
        assert env_file.stat().st_mode & 0o777 == 0o600
        env = read_env_file(tmp_path / "state")
        assert env == stack.env
        settings = Settings.from_environ(env)
        assert settings.accounts.default.flavor == "bfl"
        assert env["FILLPIPE_RESULT_HOSTS"].endswith(
            env["FILLPIPE_PROVIDER_URL"].removeprefix("http://")
        )
        pids = stack.pids
        assert set(pids) == ALL_SERVICES
        assert all(group_members(pid) for pid in pids.values())
        assert (tmp_path / "state" / "signing_key").stat().st_mode & 0o777 == 0o600
        assert (tmp_path / "state" / "dashboard_token").stat().st_mode & 0o777 == 0o600
        dashboard = httpx.get(env["FILLPIPE_DASHBOARD_URL"] + "/api/batches", timeout=10)
        assert dashboard.status_code == 401
        signed = {"Authorization": f"Bearer {env['FILLPIPE_DASHBOARD_TOKEN']}"}
        dashboard = httpx.get(env["FILLPIPE_DASHBOARD_URL"] + "/api/batches", headers=signed)
        assert dashboard.json() == {"batches": [], "page": 1, "pages": 1}
    finally:
        stack.stop()
    wait_for(lambda: no_process_left(pids), timeout_s=5, what="no process left")
    assert not env_file.exists()
    stack.stop()  # idempotent


@pytest.mark.integration
@pytest.mark.timeout(240)
def test_fillpipe_up_stops_everything_on_sigterm(
    tmp_path: Path, clean_environ: dict[str, str]
) -> None:
    state = tmp_path / "state"
    up = start_up(state, clean_environ)
    try:
        pids = wait_for_pids(up, state)
        assert set(pids) == ALL_SERVICES
        env = read_env_file(state)
        assert env is not None
        up.send_signal(signal.SIGTERM)
        output, _ = up.communicate(timeout=90)
    finally:
        stop_up(up)
    assert up.returncode == 0, output.decode()
    wait_for(lambda: no_process_left(pids), timeout_s=5, what="no process left")
    assert f"source {state}" in output.decode()
    assert "  callbacks via http://127.0.0.1:" in output.decode()  # the receiver's URL
    for name in SECRET_NAMES:
        assert env[name] not in output.decode(), f"{name} was printed"
    assert not (state / "stack.env").exists()


@pytest.mark.integration
@pytest.mark.timeout(240)
def test_two_stacks_run_side_by_side(tmp_path: Path, clean_environ: dict[str, str]) -> None:
    first = EmbeddedStack(tmp_path / "one", clean_environ, services=("emulator", "receiver"))
    second = EmbeddedStack(tmp_path / "two", clean_environ, services=("emulator", "receiver"))
    with first, second:
        urls = [stack.env["FILLPIPE_RECEIVER_URL"] for stack in (first, second)]
        assert len({*urls, *(s.env["FILLPIPE_PROVIDER_URL"] for s in (first, second))}) == 4
        assert first.env["FILLPIPE_REDIS_URL"] != second.env["FILLPIPE_REDIS_URL"]
        assert first.env["FILLPIPE_S3_ENDPOINT_URL"] != second.env["FILLPIPE_S3_ENDPOINT_URL"]
        for stack in (first, second):
            assert healthy(stack.env["FILLPIPE_RECEIVER_URL"])
            assert healthy(stack.env["FILLPIPE_PROVIDER_URL"])
            s3_client(stack.env).put_object(Bucket="fillpipe", Key="side-by-side", Body=b"x")


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_settings_in_the_environment_are_used_and_their_servers_not_started(
    tmp_path: Path, clean_environ: dict[str, str], valkey_url: str, s3_env: dict[str, str]
) -> None:
    given = external_servers(clean_environ, valkey_url, s3_env)
    with EmbeddedStack(tmp_path, given, services=("emulator", "receiver")) as stack:
        assert set(stack.pids) == {"receiver"}
        assert {name: stack.env[name] for name in given if name.startswith("FILLPIPE_")} == {
            name: value for name, value in given.items() if name.startswith("FILLPIPE_")
        }
        assert healthy(stack.env["FILLPIPE_RECEIVER_URL"])
        # A provider elsewhere cannot call a loopback receiver: callbacks off, polling.
        assert "FILLPIPE_PUBLIC_URL" not in stack.env
    assert not (tmp_path / "valkey").exists()
    assert not (tmp_path / "s3").exists()


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_a_killed_service_is_reported_and_restarts_on_the_same_port(
    tmp_path: Path, clean_environ: dict[str, str], valkey_url: str, s3_env: dict[str, str]
) -> None:
    given = external_servers(clean_environ, valkey_url, s3_env)
    with EmbeddedStack(tmp_path, given, services=("receiver",)) as stack:
        receiver = stack.pids["receiver"]
        stack.kill("receiver")
        assert stack.exited() == ["receiver"]
        assert stack.pids == {}
        wait_for(lambda: not group_members(receiver), timeout_s=5, what="receiver gone")
        stack.restart("receiver")
        assert stack.exited() == []
        assert stack.pids["receiver"] != receiver
        assert healthy(stack.env["FILLPIPE_RECEIVER_URL"])


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_one_state_dir_serves_one_stack_at_a_time(
    tmp_path: Path, clean_environ: dict[str, str], valkey_url: str, s3_env: dict[str, str]
) -> None:
    given = {**clean_environ, **s3_env, "FILLPIPE_REDIS_URL": valkey_url}
    with (
        EmbeddedStack(tmp_path, given, services=()),
        pytest.raises(StackError, match="another fillpipe stack"),
    ):
        EmbeddedStack(tmp_path, given, services=()).start()
    with EmbeddedStack(tmp_path, given, services=()) as again:
        assert again.pids == {}
