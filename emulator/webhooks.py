"""Webhook deliveries of finished tasks, as integrations observe the provider's.

Headers: `X-Webhook-Secret: <secret verbatim>` when the submit gave a secret, and
`X-BFL-Signature: sha256=<hex HMAC-SHA256(secret, raw body)>` as well when signing is
configured. Body shapes (config `webhook_shape`):

    "bfl"     {"task_id", "status": "SUCCESS" | "FAILED" | "Content Moderated" …, "result"}
    "result"  exactly what get_result answers: {"id", "status": "Ready", "result", …}

Non-2xx answers and connection errors are retried `retries` times, waiting
`backoff_s`, then twice that, and so on. Injected faults (`emulator.faults`) may drop a
webhook, delay it, send it twice, or hold it back until the next webhook has gone out
(a held webhook waits for ever if none follows).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from emulator.faults import FaultInjector

SECRET_HEADER = "X-Webhook-Secret"  # noqa: S105 (a header name)
SIGNATURE_HEADER = "X-BFL-Signature"
WEBHOOK_TIMEOUT_S = 10.0
# get_result statuses as the "bfl" webhook shape words them.
BFL_SHAPE_STATUSES = {
    "Ready": "SUCCESS",
    "Error": "FAILED",
    "Content Moderated": "Content Moderated",
    "Request Moderated": "Request Moderated",
}

logger = logging.getLogger(__name__)
# Called when a delivery is answered 2xx (each time: a duplicate fault delivers twice).
OnDelivered = Callable[[], None]


@dataclass(frozen=True)
class WebhookTarget:
    """Where a task reports when it finishes."""

    url: str
    secret: str | None = field(default=None, repr=False)


def webhook_body(report: Mapping[str, Any], shape: str) -> dict[str, Any]:
    """The webhook body for a task's get_result `report`, in `shape` ("bfl" or "result")."""
    if shape == "result":
        return dict(report)
    status = report["status"]
    return {
        "task_id": report["id"],
        "status": BFL_SHAPE_STATUSES.get(status, status),
        "result": report["result"],
    }


def signature(secret: str, body: bytes) -> str:
    """The `X-BFL-Signature` value for `body`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookSender:
    """POSTs task reports to webhook targets over one shared client, with retries."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        shape: str,
        sign: bool,
        retries: int,
        backoff_s: float,
        faults: FaultInjector,
    ) -> None:
        self._http = http
        self._faults = faults
        self._held: list[tuple[WebhookTarget, Mapping[str, Any], OnDelivered | None]] = []
        self._shape = shape
        self._sign = sign
        self._retries = retries
        self._backoff_s = backoff_s

    async def send(
        self,
        target: WebhookTarget,
        report: Mapping[str, Any],
        on_delivered: OnDelivered | None = None,
    ) -> bool:
        """Deliver `report`, subject to the injected faults; True once the receiver answered
        2xx, False after giving up or when a fault dropped or held it back.

        `on_delivered` runs whenever the receiver answers 2xx, a held-back report's too
        (then during a later `send`)."""
        if self._faults.drop_webhook():
            logger.info("webhook for task %s dropped (injected fault)", report["id"])
            return False
        if self._faults.reorder_webhook():
            self._held.append((target, report, on_delivered))
            return False
        delay_s = self._faults.webhook_delay_s()
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        delivered = await self._deliver(target, report, on_delivered)
        if self._faults.duplicate_webhook():
            await self._deliver(target, report, on_delivered)
        await self._release_held()
        return delivered

    async def _release_held(self) -> None:
        held, self._held = self._held, []
        for target, report, on_delivered in held:
            await self._deliver(target, report, on_delivered)

    async def _deliver(
        self, target: WebhookTarget, report: Mapping[str, Any], on_delivered: OnDelivered | None
    ) -> bool:
        body = json.dumps(webhook_body(report, self._shape), separators=(",", ":")).encode()
        headers = self._headers(target, body)
        for attempt in range(self._retries + 1):
            if attempt:
                await asyncio.sleep(self._backoff_s * 2 ** (attempt - 1))
            if await self._post(target.url, body, headers):
                if on_delivered is not None:
                    on_delivered()
                return True
        logger.warning(
            "webhook for task %s not delivered after %d attempts", report["id"], self._retries + 1
        )
        return False

    def _headers(self, target: WebhookTarget, body: bytes) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        if target.secret is not None:
            headers[SECRET_HEADER] = target.secret
            if self._sign:
                headers[SIGNATURE_HEADER] = signature(target.secret, body)
        return headers

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> bool:
        try:
            response = await self._http.post(
                url, content=body, headers=headers, timeout=WEBHOOK_TIMEOUT_S
            )
        except httpx.HTTPError as error:
            logger.info("webhook attempt failed: %s", type(error).__name__)
            return False
        return response.is_success
