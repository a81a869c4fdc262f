from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest

from bench.moto_server import REGION, MotoServer
from pipeline.ledger import Ledger
from pipeline.settings import Settings
from pipeline.storage import Storage
from tests.conftest import hermetic_environ

SIBLING_MASK = "{dir}/{stem}.mask.png"


def retouch_rule(prefix: str, *, bucket: str = "fillpipe", mask: str = SIBLING_MASK) -> str:
    """The text of a rules file with one rule, `retouch`: the PNGs under `prefix` in
    `bucket`, edited into `prefix`edited/ (inside its own prefix: the loop guard holds)."""
    return f"""
[[rules]]
name = "retouch"
bucket = "{bucket}"
prefix = "{prefix}"
suffix = ".png"
mask = "{mask}"
output = "s3://{bucket}/{prefix}edited/{{stem}}.{{ext}}"
prompt = "a glossy studio finish"
finetune_id = "my-brand"
output_format = "png"
tags = {{ campaign = "spring" }}
"""


SETTINGS_ENV = {
    "FILLPIPE_PROVIDER_URL": "https://provider.invalid",
    "FILLPIPE_PROVIDER_KEY": "test-provider-key",
    "FILLPIPE_PUBLIC_URL": "https://hooks.example.com",
    "FILLPIPE_SIGNING_KEY": "s" * 40,
}


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    """moto's server: S3 that notifies its own SQS, SNS and EventBridge."""
    server = MotoServer(tmp_path_factory.mktemp("moto") / "moto.log", hermetic_environ())
    server.start(timeout_s=60)
    try:
        yield server
    finally:
        server.stop()


def aws_client(server: MotoServer, service: str):  # type: ignore[no-untyped-def]
    return boto3.session.Session().client(
        service,
        endpoint_url=server.url,
        region_name=REGION,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture
def seaweed_settings(valkey_url: str, s3_env: dict[str, str]) -> Settings:
    """Settings on the session's Valkey and SeaweedFS (a fresh ledger each test)."""
    settings = Settings.from_environ({**s3_env, **SETTINGS_ENV, "FILLPIPE_REDIS_URL": valkey_url})
    Ledger.from_settings(settings).redis.flushdb()
    return settings


@pytest.fixture
def moto_settings(valkey_url: str, moto_server: MotoServer) -> Settings:
    """Settings on the session's Valkey and moto's S3 (a fresh ledger each test)."""
    env = {**moto_server.env, **SETTINGS_ENV, "FILLPIPE_REDIS_URL": valkey_url}
    settings = Settings.from_environ(env)
    Ledger.from_settings(settings).redis.flushdb()
    return settings


@pytest.fixture
def seaweed_storage(seaweed_settings: Settings) -> Storage:
    return Storage.from_settings(seaweed_settings)
