"""Storage events in: MinIO bucket webhooks and EventBridge API destinations.

    HEAD /v1/events/s3   200: MinIO checks that the endpoint is alive before it sends
    POST /v1/events/s3   in this order:
                         413 when the body is over the limit;
                         401 without `Authorization: Bearer TOKEN` or `x-api-key: TOKEN`
                             (compared in constant time);
                         400 when the body is not an S3, MinIO, SNS or EventBridge
                             notification;
                         200 once every job it makes is in the ledger (also for events
                             that make none: tests, deletes, unmatched keys, outputs);
                         503 when S3 or Redis cannot be reached: the sender retries.

Events are handled in a worker thread: the intake checks each object with a HEAD.
"""

from __future__ import annotations

import hmac
import logging

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from pipeline.errors import BodyTooLarge, MalformedEvent
from pipeline.settings import Secret
from pipeline.triggers.events import from_webhook
from pipeline.triggers.intake import TriggerIntake
from webhook_receiver.bodies import answer, read_body

log = logging.getLogger(__name__)

EVENTS_ROUTE = "/v1/events/s3"
MAX_EVENT_BYTES = 1024 * 1024
BEARER = "bearer "


class EventHandlers:
    """The event route's handlers, over one intake and the events token."""

    def __init__(
        self, intake: TriggerIntake, token: Secret, *, max_body_bytes: int = MAX_EVENT_BYTES
    ) -> None:
        self._intake = intake
        self._token = token.reveal().encode()
        self.max_body_bytes = max_body_bytes

    def __repr__(self) -> str:
        return "EventHandlers()"

    async def head(self, _: Request) -> Response:
        """MinIO's liveness check."""
        return Response(status_code=200)

    async def post(self, request: Request) -> Response:
        try:
            body = await read_body(request, self.max_body_bytes)
        except BodyTooLarge:
            return answer(413, "request body too large")
        if not self._authorized(request):
            log.info("storage event rejected: missing or wrong token")
            return answer(401, "unauthorized")
        try:
            events = from_webhook(body)
        except MalformedEvent as error:
            log.info("storage event rejected: %s", error)
            return answer(400, "not a storage event notification")
        try:
            outcomes = await run_in_threadpool(self._intake.handle, events)
        except Exception as error:
            # Only the type: S3 and Redis errors can name hosts.
            log.error("storage event not recorded: %s", type(error).__name__)
            return answer(503, "temporarily unavailable")
        jobs = sum(outcome.created for outcome in outcomes)
        return JSONResponse({"status": "ok", "events": len(events), "jobs": jobs})

    def _authorized(self, request: Request) -> bool:
        """A Bearer token (MinIO's auth_token) or an x-api-key header (EventBridge)."""
        authorization = request.headers.get("authorization", "")
        offered = authorization[len(BEARER) :] if authorization.lower().startswith(BEARER) else ""
        offered = offered.strip() or request.headers.get("x-api-key", "").strip()
        return bool(offered) and hmac.compare_digest(offered.encode(), self._token)

    def close(self) -> None:
        self._intake.close()
