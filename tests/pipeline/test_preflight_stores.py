"""Preflight of S3 and Redis against real servers: a SeaweedFS with limited identities,
a Valkey of the test's own, and closed ports."""

from __future__ import annotations

import dataclasses
import json
import secrets
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import redis

from fillpipe.ports import free_ports
from fillpipe.servers import S3Credentials, SeaweedS3Server, ValkeyServer
from pipeline.preflight import PROBE_PREFIX, Status, check_redis, check_storage
from pipeline.secret import Secret
from pipeline.settings import Settings
from tests.conftest import hermetic_environ

pytestmark = [pytest.mark.timeout(120), pytest.mark.integration]

TIMEOUT_S = 2.0
# SeaweedFS identities (its s3.json actions) and what each may not do.
LIMITED_IDENTITIES = {
    "readonly": ["Read", "List"],  # no put
    "writeonly": ["Write", "List", "Tagging"],  # puts and deletes, cannot read back
}


class LimitedSeaweed(SeaweedS3Server):
    """The embedded S3 server with extra identities from an s3.json config file."""

    def __init__(self, *args, config_path, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.config_path = config_path

    def _command(self) -> list[str]:
        return [*super()._command(), f"-s3.config={self.config_path}"]


@pytest.fixture(scope="module")
def limited_s3(tmp_path_factory) -> Iterator[SeaweedS3Server]:
    root = tmp_path_factory.mktemp("limited-s3")
    admin = S3Credentials.load_or_create(root / "credentials")
    identities = [identity("admin", admin, ["Admin", "Read", "List", "Tagging", "Write"])]
    identities += [
        identity(name, limited_credentials(name), actions)
        for name, actions in LIMITED_IDENTITIES.items()
    ]
    config = root / "s3.json"
    config.write_text(json.dumps({"identities": identities}))
    server = LimitedSeaweed(
        root / "data",
        root / "s3.log",
        credentials=admin,
        bucket="fillpipe",
        environ=hermetic_environ(),
        config_path=config,
    )
    server.start(timeout_s=60)
    try:
        yield server
    finally:
        server.stop()


def identity(name: str, credentials: S3Credentials, actions: list[str]) -> dict[str, object]:
    keys = {"accessKey": credentials.access_key_id, "secretKey": credentials.secret_access_key}
    return {"name": name, "credentials": [keys], "actions": actions}


def limited_credentials(name: str) -> S3Credentials:
    return S3Credentials(f"FP{name.upper()}KEY", f"{name}-secret-key-0123456789")


def s3_settings(env: dict[str, str], **changes: object) -> Settings:
    settings = Settings.from_environ(
        {
            **env,
            "FILLPIPE_REDIS_URL": "redis://127.0.0.1:1/0",
            "FILLPIPE_PROVIDER_URL": "http://127.0.0.1:1",
            "FILLPIPE_PROVIDER_KEY": "unused",
            "FILLPIPE_SIGNING_KEY": "s" * 40,
        }
    )
    return dataclasses.replace(settings, **changes)


def closed_port() -> int:
    (port,) = free_ports(1)
    return port


def probe_keys(server: SeaweedS3Server) -> list[str]:
    listing = server.client().list_objects_v2(Bucket="fillpipe", Prefix=PROBE_PREFIX)
    return [item["Key"] for item in listing.get("Contents", [])]


def test_a_missing_bucket_fails_and_is_not_created(s3_env):
    bucket = f"nosuchbucket-{secrets.token_hex(4)}"
    settings = s3_settings(s3_env, bucket=bucket)

    result = check_storage(settings, timeout_s=TIMEOUT_S)

    assert result.status is Status.FAIL
    assert result.detail.startswith(f"bucket {bucket} does not exist on http://127.0.0.1:")
    assert result.fix == "create it or set FILLPIPE_BUCKET"
    assert check_storage(settings, timeout_s=TIMEOUT_S).status is Status.FAIL  # still missing


def test_refused_credentials_name_the_variables_not_the_secret(s3_env):
    wrong = "wrong-secret-0123456789abcdef"
    settings = s3_settings(s3_env, aws_secret_access_key=Secret(wrong))

    result = check_storage(settings, timeout_s=TIMEOUT_S)

    assert result.status is Status.FAIL
    assert "refused the credentials (SignatureDoesNotMatch)" in result.detail
    assert "AWS_SECRET_ACCESS_KEY" in result.fix
    assert wrong not in f"{result.detail} {result.fix}"


def test_an_unreachable_endpoint_names_its_setting_quickly(s3_env):
    endpoint = f"http://127.0.0.1:{closed_port()}"
    settings = s3_settings(s3_env, s3_endpoint_url=endpoint)
    started = time.monotonic()

    result = check_storage(settings, timeout_s=TIMEOUT_S)

    assert time.monotonic() - started < TIMEOUT_S + 1
    assert result.status is Status.FAIL
    assert result.detail.startswith(f"could not reach S3 at {endpoint}")
    assert "FILLPIPE_S3_ENDPOINT_URL" in result.fix


def test_an_endpoint_that_is_not_a_url_is_named(s3_env):
    result = check_storage(s3_settings(s3_env, s3_endpoint_url="not a url"), timeout_s=TIMEOUT_S)

    assert result.status is Status.FAIL
    assert result.detail == "FILLPIPE_S3_ENDPOINT_URL not a url is not a URL"


def limited_settings(limited_s3, identity: str):
    """The settings of `limited_s3` with the credentials of one of its identities."""
    credentials = limited_credentials(identity)
    return s3_settings(
        limited_s3.env,
        aws_access_key_id=credentials.access_key_id,
        aws_secret_access_key=Secret(credentials.secret_access_key),
    )


def test_a_refused_put_names_the_write_permissions(limited_s3):
    settings = limited_settings(limited_s3, "readonly")

    result = check_storage(settings, timeout_s=TIMEOUT_S)

    assert result.status is Status.FAIL
    assert "missing s3:PutObject, s3:PutObjectTagging" in result.detail
    assert "arn:aws:s3:::fillpipe/outputs/*" in result.fix


def test_refused_reads_are_all_named_and_the_probe_is_still_deleted(limited_s3):
    settings = limited_settings(limited_s3, "writeonly")

    result = check_storage(settings, timeout_s=TIMEOUT_S)

    assert result.status is Status.FAIL
    assert "missing s3:GetObjectTagging, s3:GetObject" in result.detail
    assert probe_keys(limited_s3) == []


def test_full_access_passes_and_leaves_nothing(limited_s3):
    result = check_storage(s3_settings(limited_s3.env), timeout_s=TIMEOUT_S)

    assert result.status is Status.OK, result
    assert probe_keys(limited_s3) == []


@pytest.fixture
def own_valkey(tmp_path) -> Iterator[str]:
    """A Valkey of this test's own (its settings may be changed); its URL."""
    server = ValkeyServer(tmp_path / "data", tmp_path / "valkey.log", environ=hermetic_environ())
    server.start(timeout_s=30)
    try:
        yield server.url
    finally:
        server.stop()


def test_redis_with_noeviction_passes(valkey_url):
    result = check_redis(valkey_url, timeout_s=TIMEOUT_S)

    assert result.status is Status.OK
    assert result.detail.endswith("maxmemory-policy noeviction")
    assert (urlsplit(valkey_url).password or "") not in result.detail


def test_redis_down_fails_quickly_naming_the_setting():
    url = f"redis://127.0.0.1:{closed_port()}/0"
    started = time.monotonic()

    result = check_redis(url, timeout_s=TIMEOUT_S)

    assert time.monotonic() - started < TIMEOUT_S + 1
    assert result.status is Status.FAIL
    assert result.detail == f"Redis at {url} does not answer (ConnectionError)"
    assert "FILLPIPE_REDIS_URL" in result.fix


def test_a_wrong_redis_password_is_named_but_not_shown(valkey_url):
    parts = urlsplit(valkey_url)
    wrong = valkey_url.replace(f":{parts.password}@", ":not-the-password@")

    result = check_redis(wrong, timeout_s=TIMEOUT_S)

    assert result.status is Status.FAIL
    assert result.detail == f"Redis at redis://:***@127.0.0.1:{parts.port}/0 refused the password"
    assert "not-the-password" not in result.detail


def test_an_evicting_redis_warns(own_valkey):
    redis.Redis.from_url(own_valkey).config_set("maxmemory-policy", "allkeys-lru")

    result = check_redis(own_valkey, timeout_s=TIMEOUT_S)

    assert result.status is Status.WARN
    assert "maxmemory-policy is allkeys-lru" in result.detail
    assert "maxmemory-policy noeviction" in result.fix


def test_a_redis_that_forbids_config_skips_the_policy(own_valkey):
    port = urlsplit(own_valkey).port
    admin = redis.Redis.from_url(own_valkey)
    admin.acl_setuser(
        "app", enabled=True, passwords=["+app-password"], keys=["*"], commands=["+@all", "-config"]
    )

    result = check_redis(f"redis://app:app-password@127.0.0.1:{port}/0", timeout_s=TIMEOUT_S)

    assert result.status is Status.OK
    assert "maxmemory-policy not readable (CONFIG not allowed)" in result.detail
