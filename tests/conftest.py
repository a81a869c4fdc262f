"""Session-wide real servers: an embedded Valkey, an S3 server and a whole embedded stack.

Each fixture starts its servers once per test session on free loopback ports, in a
temporary state dir, with the same classes `fillpipe up` uses, and stops them at the end.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from fillpipe.servers import S3Credentials, SeaweedS3Server, ValkeyServer
from fillpipe.stack import EmbeddedStack
from pipeline.ledger import Ledger, redis_client
from pipeline.runtime import Runtime
from pipeline.settings import DEFAULT_PROVIDER_SLOTS, Settings
from tests.finetune_helpers import emulator_process
from tests.stacks import hermetic_environ, running_stack, train_finetune

STACK_EMULATOR_ENV = {
    "FILLPIPE_EMULATOR_LATENCY_BASE_S": "0.2",
    "FILLPIPE_EMULATOR_LATENCY_PER_MP_S": "0",
    "FILLPIPE_EMULATOR_LATENCY_JITTER_S": "0",
}


@pytest.fixture
def clean_environ() -> dict[str, str]:
    """This process's environment without FILLPIPE_* and AWS_* settings."""
    return hermetic_environ()


@pytest.fixture(scope="session")
def valkey_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The redis:// URL (password included) of an embedded Valkey (AOF, noeviction)."""
    root = tmp_path_factory.mktemp("valkey")
    server = ValkeyServer(root / "data", root / "valkey.log", environ=hermetic_environ())
    server.start(timeout_s=30)
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """An embedded SeaweedFS S3 server, as settings: FILLPIPE_S3_ENDPOINT_URL,
    FILLPIPE_S3_REGION, FILLPIPE_BUCKET, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY."""
    root = tmp_path_factory.mktemp("s3")
    server = SeaweedS3Server(
        root / "data",
        root / "s3.log",
        credentials=S3Credentials.load_or_create(root / "credentials"),
        bucket="fillpipe",
        environ=hermetic_environ(),
    )
    server.start(timeout_s=60)
    try:
        yield server.env
    finally:
        server.stop()


@pytest.fixture(scope="session")
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[EmbeddedStack]:
    """A whole embedded stack (Valkey, S3, emulator at 0.2 s latency, receiver, worker,
    beat); `stack.env` holds the settings. Prints each service's log tail if a test failed."""
    root = tmp_path_factory.mktemp("stack")
    with running_stack(request, root, hermetic_environ(), STACK_EMULATOR_ENV) as embedded:
        yield embedded


@pytest.fixture(scope="session")
def stack_rt(stack: EmbeddedStack) -> Iterator[Runtime]:
    """A runtime wired to the embedded stack, as the CLI builds one."""
    runtime = Runtime.from_settings(Settings.from_environ(stack.env))
    yield runtime
    runtime.close()


@pytest.fixture(scope="session")
def finetune_id(stack_rt: Runtime) -> str:
    """A finetune trained on the stack's emulator and ready for use."""
    return train_finetune(stack_rt)


@pytest.fixture
def ledger(valkey_url: str) -> Iterator[Ledger]:
    """A ledger of this test's own on the session's Valkey: its keys under a fresh prefix."""
    own = Ledger(
        redis_client(valkey_url),
        slots=DEFAULT_PROVIDER_SLOTS,
        prefix=f"test-{uuid.uuid4().hex[:12]}:",
    )
    yield own
    own.close()


@pytest.fixture(scope="module")
def emulator_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The emulator as its own process, as `fillpipe emulator` runs it, with the keys,
    credits and admin token of `tests.finetune_helpers`: its base URL."""
    with emulator_process(tmp_path_factory.mktemp("emulator")) as url:
        yield url
