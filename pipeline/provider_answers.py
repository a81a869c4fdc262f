"""The provider's answers, translated at the boundary: an error status becomes the
`pipeline.errors` exception that says what the caller should do, a body becomes a JSON
object or an error, and the provider's explanation is found wherever it put it."""

from __future__ import annotations

from typing import Any

import httpx

from pipeline.errors import (
    KeyRejected,
    OutOfCredits,
    ProviderRejected,
    RateLimited,
)

# Statuses by which a provider says a path is not (or no longer) served; a 404 counts
# only with the web framework's bare "Not Found", since unknown finetunes answer 404 too.
WITHDRAWN_STATUSES = frozenset({404, 405, 410})
ROUTE_NOT_FOUND = "Not Found"


def is_withdrawn(response: httpx.Response) -> bool:
    """Whether the answer says the path itself is not served (not that a finetune or
    task it names is unknown: those answer 404 with their own message)."""
    status = response.status_code
    if status not in WITHDRAWN_STATUSES:
        return False
    if status != 404:
        return True
    try:
        data = response.json()
    except ValueError:
        return True
    return not isinstance(data, dict) or data.get("detail", ROUTE_NOT_FOUND) == ROUTE_NOT_FOUND


def raise_for_client_error(response: httpx.Response) -> None:
    status = response.status_code
    if status < 400:
        return
    message = error_message(response)
    if status == 429:
        raise RateLimited(
            f"provider is at its task limit: {message}", retry_after_s=retry_after_s(response)
        )
    if status == 402:
        raise OutOfCredits(f"provider account has no credits left: {message}")
    if status in (401, 403):
        raise KeyRejected(f"provider refused the API key ({status}): {message}")
    raise ProviderRejected(message, status)


def error_message(response: httpx.Response) -> str:
    """The provider's explanation: `detail` (FastAPI 422 list or text), `message`, `error`."""
    try:
        data = response.json()
    except ValueError:
        return response.reason_phrase or f"HTTP {response.status_code}"
    if isinstance(data, dict):
        for name in ("detail", "message", "error"):
            if name in data:
                return describe(data[name])
    return f"HTTP {response.status_code}"


def describe(value: object) -> str:
    if isinstance(value, list):
        return "; ".join(describe_item(item) for item in value)
    return str(value)


def describe_item(item: object) -> str:
    if isinstance(item, dict) and "msg" in item:
        location = ".".join(str(part) for part in item.get("loc", []) if part != "body")
        return f"{location}: {item['msg']}" if location else str(item["msg"])
    return str(item)


def retry_after_s(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def json_object(response: httpx.Response, error: type[Exception]) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        raise error("provider answered with a body that is not JSON") from None
    if not isinstance(data, dict):
        raise error("provider answered with JSON that is not an object")
    return data
