"""Schemathesis against the receiver's own /openapi.json: the real app on a real Valkey.

Every generated request gets an answer the description lists, in the shape it gives,
and never a 5xx. Half the cases carry a genuine token and secret for a fresh job, so
the verified answers (200, 400, 415, and 404 for a job the ledger lacks) are exercised
as well as the 401s.
"""

import itertools

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from pipeline.ledger import Ledger, redis_client
from pipeline.ledger.connection import async_redis_client
from pipeline.recorder import CallbackRecorder
from pipeline.settings import Secret
from pipeline.signing import CallbackSigner
from webhook_receiver.app import create_app

from .test_callbacks import new_job

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

CALLBACK = "/v1/callbacks/bfl/{token}"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


@pytest.fixture(scope="module")
def receiver(valkey_url):
    ledger = Ledger(redis_client(valkey_url), slots=24, prefix="openapi:")
    signer = CallbackSigner([Secret("s" * 40)], max_age_s=3600)
    recorder = CallbackRecorder(lambda: async_redis_client(valkey_url), ledger.scripts.context)
    app = create_app(signer=signer, recorder=recorder)
    yield app, signer, ledger
    ledger.close()


@pytest.fixture(scope="module")
def api_schema(receiver):
    app, _, _ = receiver
    return schemathesis.openapi.from_asgi("/openapi.json", app)


# Schemathesis' own pytest loader (`from_fixture`) does not run on pytest 9, so the
# operations' strategies are drawn from in plain Hypothesis tests.
@pytest.mark.parametrize(
    ("path", "method", "mode", "expected"),
    [
        (CALLBACK, "POST", GenerationMode.POSITIVE, {200, 401}),
        (CALLBACK, "POST", GenerationMode.NEGATIVE, {401}),
        ("/healthz", "GET", GenerationMode.POSITIVE, {200}),
    ],
)
def test_receiver_conforms_to_its_openapi(api_schema, receiver, path, method, mode, expected):
    _, signer, ledger = receiver
    operation = api_schema[path][method]
    calls = itertools.count()
    seen: set[int] = set()

    @settings(
        max_examples=40 if path == "/healthz" else 80,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case):
        if case.path_parameters is not None and next(calls) % 2 == 0:
            genuine(case, signer, new_job(ledger))
        seen.add(case.call_and_validate(checks=CHECKS).status_code)

    check()
    print(f"{method} {path} ({mode.value}): answers {sorted(seen)}")
    assert seen >= expected


def genuine(case, signer, ref) -> None:
    """Give `case` a real token and secret for `ref` (attempt 1)."""
    case.path_parameters["token"] = signer.token(ref, 1)
    headers = dict(case.headers or {})
    headers.pop("x-bfl-signature", None)
    headers["x-webhook-secret"] = signer.webhook_secret(ref, 1)
    case.headers = headers
