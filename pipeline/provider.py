"""The provider client: submit an edit, read a task's result.

Errors are translated at this boundary into `pipeline.errors` by what the caller should
do (docs/provider.md, "Retrying"): a connect error is safe to repeat; a 5xx or a
read timeout on the paid POST is ambiguous and must not be repeated blindly; 429 carries
Retry-After; 402 means no credits; 4xx with a message is permanent.

The HTTP transport is a constructor argument, so tests use `httpx.MockTransport` or the
emulator over real HTTP, never patching.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx

from pipeline.accounts import Accounts, ProviderAccount, ProviderFlavor
from pipeline.errors import (
    AmbiguousSubmit,
    EndpointWithdrawn,
    ProviderUnavailable,
    UnsafeResult,
)
from pipeline.provider_answers import (
    describe,
    is_withdrawn,
    json_object,
    raise_for_client_error,
)
from pipeline.secret import Secret

FILL_FINETUNED_ENDPOINT = "flux-pro-1.0-fill-finetuned"
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 60.0
MAX_CONNECTIONS = 64
_PATH_PREFIX: dict[ProviderFlavor, str] = {"bfl": "/v1", "cometapi": "/flux/v1"}


class TaskStatus(StrEnum):
    """The provider's task statuses, verbatim."""

    PENDING = "Pending"
    READY = "Ready"
    ERROR = "Error"
    REQUEST_MODERATED = "Request Moderated"
    CONTENT_MODERATED = "Content Moderated"
    NOT_FOUND = "Task not found"

    @property
    def is_final(self) -> bool:
        return self is not TaskStatus.PENDING


@dataclass(frozen=True)
class Submission:
    """The provider's answer to a submit."""

    task_id: str
    polling_url: str
    cost_credits: float | None


@dataclass(frozen=True)
class TaskResult:
    """A task's state as `get_result` reports it."""

    task_id: str
    status: TaskStatus
    sample_url: str | None = None
    seed: int | None = None
    details: str = ""
    # 0..1 while a task (a finetune's training, say) runs, when the provider says.
    progress: float | None = None

    def __repr__(self) -> str:
        # The sample URL carries a signature: never show it.
        shown = "<signed url>" if self.sample_url else None
        return (
            f"TaskResult(task_id={self.task_id!r}, status={self.status.value!r}, "
            f"sample_url={shown}, seed={self.seed})"
        )


class ProviderClient:
    """Talks to BFL (`x-key`) or CometAPI (`Authorization: Bearer`). One per process."""

    def __init__(
        self,
        base_url: str,
        key: Secret,
        *,
        flavor: ProviderFlavor = "bfl",
        transport: httpx.BaseTransport | None = None,
        timeout_s: float | None = None,
    ) -> None:
        """`timeout_s` bounds every wait of every request (default: connect 5 s, read 60 s)."""
        self._base_url = base_url.rstrip("/")
        self._prefix = _PATH_PREFIX[flavor]
        self._auth_headers = _auth_headers(flavor, key)
        timeout = httpx.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S)
        self._http = httpx.Client(
            transport=transport,
            timeout=timeout if timeout_s is None else httpx.Timeout(timeout_s),
            limits=httpx.Limits(max_connections=MAX_CONNECTIONS),
            follow_redirects=False,
        )

    @classmethod
    def for_account(
        cls,
        account: ProviderAccount,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout_s: float | None = None,
    ) -> ProviderClient:
        return cls(
            account.base_url,
            account.key,
            flavor=account.flavor,
            transport=transport,
            timeout_s=timeout_s,
        )

    def __repr__(self) -> str:
        return f"ProviderClient(base_url={self._base_url!r})"

    @property
    def base_url(self) -> str:
        return self._base_url

    def close(self) -> None:
        self._http.close()

    def submit(self, body: bytes, *, endpoint: str = FILL_FINETUNED_ENDPOINT) -> Submission:
        """POST a paid task whose JSON body is ready (`encode_body`). Raises
        `AmbiguousSubmit` when it may exist despite an error."""
        url = f"{self._base_url}{self._prefix}/{endpoint}"
        headers = {**self._auth_headers, "content-type": "application/json"}
        try:
            response = self._http.post(url, content=body, headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as error:
            raise ProviderUnavailable(
                f"could not reach the provider: {type(error).__name__}"
            ) from None
        except httpx.HTTPError as error:
            raise AmbiguousSubmit(f"submit failed after sending: {type(error).__name__}") from None
        if response.status_code >= 500:
            raise AmbiguousSubmit(f"provider answered {response.status_code} to the submit")
        raise_for_client_error(response)
        return self._submission(response)

    def get_result(self, polling_url: str) -> TaskResult:
        """Read a task through its polling URL (never rebuilt, never re-hosted)."""
        headers = self._auth_headers if self._is_provider_host(polling_url) else None
        if headers is None:
            raise UnsafeResult("polling URL is not on the provider's host")
        try:
            response = self._http.get(polling_url, headers=headers)
        except httpx.HTTPError as error:
            raise ProviderUnavailable(f"get_result failed: {type(error).__name__}") from None
        if response.status_code == 404:
            return TaskResult(task_id="", status=TaskStatus.NOT_FOUND)
        if response.status_code >= 500:
            raise ProviderUnavailable(f"provider answered {response.status_code} to get_result")
        raise_for_client_error(response)
        return _task_result(json_object(response, ProviderUnavailable))

    def create_finetune(
        self,
        zip_bytes: bytes,
        *,
        comment: str,
        trigger_word: str,
        mode: str = "style",
        iterations: int | None = None,
        finetune_type: str | None = None,
    ) -> str:
        """Start training a finetune from a zip of images; return its id.

        `iterations` and `finetune_type` (`full` or `lora`) are sent only when given, so
        the provider's defaults (300, `full`) apply otherwise. Training runs at the
        provider; its progress is read with `get_result` on `fallback_polling_url(id)`.
        `EndpointWithdrawn` when the provider no longer offers finetune creation.
        """
        body: dict[str, Any] = {
            "file_data": base64.b64encode(zip_bytes).decode(),
            "finetune_comment": comment,
            "trigger_word": trigger_word,
            "mode": mode,
        }
        if iterations is not None:
            body["iterations"] = iterations
        if finetune_type is not None:
            body["finetune_type"] = finetune_type
        answer = self.request_json("POST", "finetune", what="finetune creation", body=body)
        finetune_id = answer.get("finetune_id")
        if not isinstance(finetune_id, str) or not finetune_id:
            raise ProviderUnavailable("provider's finetune answer has no finetune_id")
        return finetune_id

    def request_json(
        self,
        method: str,
        endpoint: str,
        *,
        what: str,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """One request to a management endpoint (`my_finetunes`, `credits`…), its JSON
        object answered; `what` names the endpoint's purpose in errors, which are
        `ProviderUnavailable` (unreachable, 5xx, not JSON), `EndpointWithdrawn`
        (404/405/410 for the path), `KeyRejected` (401/403), `OutOfCredits`,
        `RateLimited` and `ProviderRejected` (any other 4xx)."""
        path = f"{self._prefix}/{endpoint}"
        try:
            response = self._http.request(
                method, self._base_url + path, params=params, json=body, headers=self._auth_headers
            )
        except httpx.HTTPError as error:
            raise ProviderUnavailable(
                f"could not reach {self._base_url} for {what} ({type(error).__name__})"
            ) from None
        if response.status_code >= 500:
            raise ProviderUnavailable(f"provider answered {response.status_code} to {what}")
        if is_withdrawn(response):
            raise EndpointWithdrawn(what, f"{method} {path}", response.status_code, self._base_url)
        raise_for_client_error(response)
        return json_object(response, ProviderUnavailable)

    def fallback_polling_url(self, task_id: str) -> str:
        return f"{self._base_url}{self._prefix}/get_result?{urlencode({'id': task_id})}"

    def _submission(self, response: httpx.Response) -> Submission:
        data = json_object(response, AmbiguousSubmit)
        task_id = data.get("id")
        if not isinstance(task_id, str) or not task_id:
            raise AmbiguousSubmit("provider's submit answer has no task id")
        polling_url = data.get("polling_url")
        if not isinstance(polling_url, str) or not polling_url:
            polling_url = self.fallback_polling_url(task_id)
        cost = data.get("cost")
        return Submission(
            task_id, polling_url, float(cost) if isinstance(cost, int | float) else None
        )

    def _is_provider_host(self, url: str) -> bool:
        # BFL answers from regional hosts (api.us1.bfl.ai for api.bfl.ai): same site.
        return _site(urlsplit(url).hostname) == _site(urlsplit(self._base_url).hostname)


class Providers:
    """One client per provider account, by account name. One per process."""

    def __init__(self, accounts: Accounts, *, transport: httpx.BaseTransport | None = None) -> None:
        self._accounts = accounts
        self._clients = {
            account.name: ProviderClient.for_account(account, transport=transport)
            for account in accounts
        }

    def __getitem__(self, account: str) -> ProviderClient:
        """The client of `account`; `UnknownAccount` when no such account is configured."""
        return self._clients[self._accounts.get(account).name]

    def __repr__(self) -> str:
        return f"Providers({', '.join(self._clients)})"

    @property
    def default(self) -> ProviderClient:
        return self._clients[self._accounts.default_name]

    def close(self) -> None:
        for client in self._clients.values():
            client.close()


def encode_body(fields: Mapping[str, Any]) -> bytes:
    """A submit's JSON body, encoded once, so the POST itself only sends bytes."""
    return json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode()


def _auth_headers(flavor: ProviderFlavor, key: Secret) -> dict[str, str]:
    if flavor == "cometapi":
        return {"authorization": f"Bearer {key.reveal()}"}
    return {"x-key": key.reveal()}


def _site(host: str | None) -> str:
    if not host:
        return ""
    labels = host.lower().split(".")
    if all(label.isdigit() for label in labels):
        return host
    return ".".join(labels[-2:])


def _task_result(data: Mapping[str, Any]) -> TaskResult:
    try:
        status = TaskStatus(str(data.get("status")))
    except ValueError:
        raise ProviderUnavailable(f"unknown task status {data.get('status')!r}") from None
    result = data.get("result")
    sample = result.get("sample") if isinstance(result, dict) else None
    seed = result.get("seed") if isinstance(result, dict) else None
    return TaskResult(
        task_id=str(data.get("id", "")),
        status=status,
        sample_url=sample if isinstance(sample, str) else None,
        seed=seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
        details=describe(data.get("details") or ""),
        progress=_number(data.get("progress")),
    )


def _number(value: object) -> float | None:
    """A JSON number as a float; None for anything else (booleans included)."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
