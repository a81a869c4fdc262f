import json

import httpx
import pytest

from pipeline.errors import (
    AmbiguousSubmit,
    KeyRejected,
    OutOfCredits,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
    UnsafeResult,
)
from pipeline.provider import ProviderClient, TaskStatus, encode_body
from pipeline.settings import Secret

pytestmark = pytest.mark.timeout(10)

BASE = "https://api.us1.bfl.ai"


def client(handler, flavor="bfl") -> ProviderClient:
    return ProviderClient(
        BASE, Secret("the-key"), flavor=flavor, transport=httpx.MockTransport(handler)
    )


def answer(status, body=None, headers=None):
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body, headers=headers)

    return handler


def test_submit_sends_key_and_body_and_reads_answer():
    seen = {}

    def handler(request):
        seen["url"], seen["key"] = str(request.url), request.headers.get("x-key")
        seen["body"] = json.loads(request.content)
        return httpx.Response(
            200, json={"id": "t1", "polling_url": f"{BASE}/v1/get_result?id=t1", "cost": 8.5}
        )

    submission = client(handler).submit(encode_body({"prompt": "p", "finetune_id": "f"}))
    assert seen["url"] == f"{BASE}/v1/flux-pro-1.0-fill-finetuned"
    assert seen["key"] == "the-key"
    assert seen["body"] == {"prompt": "p", "finetune_id": "f"}
    assert (submission.task_id, submission.cost_credits) == ("t1", 8.5)


def test_cometapi_uses_bearer_and_its_prefix():
    seen = {}

    def handler(request):
        seen["url"], seen["auth"] = str(request.url), request.headers.get("authorization")
        return httpx.Response(200, json={"id": "t1"})

    submission = client(handler, flavor="cometapi").submit(encode_body({}))
    assert seen == {"url": f"{BASE}/flux/v1/flux-pro-1.0-fill-finetuned", "auth": "Bearer the-key"}
    # No polling_url in the answer: fall back to get_result under the flavour's prefix.
    assert submission.polling_url == f"{BASE}/flux/v1/get_result?id=t1"


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (500, {"detail": "boom"}, AmbiguousSubmit),
        (503, None, AmbiguousSubmit),
        (429, {"detail": "too many active tasks"}, RateLimited),
        (402, {"detail": "no credits"}, OutOfCredits),
        (422, {"detail": [{"loc": ["body", "steps"], "msg": "must be <= 50"}]}, ProviderRejected),
        (401, {"message": "bad key"}, KeyRejected),
    ],
)
def test_submit_errors_are_translated(status, body, error):
    with pytest.raises(error):
        client(answer(status, body)).submit(encode_body({}))


def test_422_message_names_the_field():
    body = {"detail": [{"loc": ["body", "steps"], "msg": "must be <= 50", "type": "x"}]}
    with pytest.raises(ProviderRejected, match="steps: must be <= 50"):
        client(answer(422, body)).submit(encode_body({}))


def test_429_carries_retry_after():
    with pytest.raises(RateLimited) as caught:
        client(answer(429, {"detail": "busy"}, {"retry-after": "7"})).submit(encode_body({}))
    assert caught.value.retry_after_s == 7.0


def test_connect_error_is_retryable_but_read_timeout_is_ambiguous():
    def refuse(request):
        raise httpx.ConnectError("refused", request=request)

    def time_out(request):
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(ProviderUnavailable):
        client(refuse).submit(encode_body({}))
    with pytest.raises(AmbiguousSubmit):
        client(time_out).submit(encode_body({}))


def test_success_without_task_id_is_ambiguous():
    with pytest.raises(AmbiguousSubmit):
        client(answer(200, {"status": "ok"})).submit(encode_body({}))


def test_get_result_reads_ready_and_hides_the_signed_url():
    body = {
        "id": "t1",
        "status": "Ready",
        "result": {"sample": "https://delivery.bfl.ai/x?sig=SECRETSIG", "seed": 42},
    }
    result = client(answer(200, body)).get_result(f"{BASE}/v1/get_result?id=t1")
    assert result.status is TaskStatus.READY and result.seed == 42
    assert result.sample_url == "https://delivery.bfl.ai/x?sig=SECRETSIG"
    assert "SECRETSIG" not in repr(result)


def test_get_result_accepts_regional_host_but_not_a_foreign_one():
    ok = client(answer(200, {"id": "t", "status": "Pending"}))
    assert ok.get_result("https://api.eu1.bfl.ai/v1/get_result?id=t").status is TaskStatus.PENDING
    with pytest.raises(UnsafeResult):
        ok.get_result("https://evil.example.com/v1/get_result?id=t")


@pytest.mark.parametrize(
    "status", ["Error", "Request Moderated", "Content Moderated", "Task not found"]
)
def test_get_result_final_statuses(status):
    result = client(
        answer(
            200,
            {"id": "t", "status": status, "result": None, "details": {"Moderation Reasons": ["x"]}},
        )
    ).get_result(f"{BASE}/v1/get_result?id=t")
    assert result.status.value == status and result.status.is_final


def test_get_result_5xx_and_unknown_status_are_retryable():
    with pytest.raises(ProviderUnavailable):
        client(answer(502)).get_result(f"{BASE}/v1/get_result?id=t")
    with pytest.raises(ProviderUnavailable):
        client(answer(200, {"status": "Exploded"})).get_result(f"{BASE}/v1/get_result?id=t")
