"""The receiver: provider callbacks in, verified on the raw bytes, answered at once.

    POST /v1/callbacks/bfl/{token}   a provider callback. In this order:
                                     413 when the body is over the limit;
                                     401 when the token, the secret or the signature
                                         fails (always the same answer);
                                     415 when the verified body is not application/json;
                                     400 when the verified body is not a callback shape;
                                     404 for a job the ledger does not know;
                                     200 when accepted (also duplicates, running tasks
                                         and stale attempts, which change nothing);
                                     503 when Redis or the broker cannot be reached.
    HEAD, POST /v1/events/s3         storage events (MinIO, EventBridge), when trigger
                                     rules are configured: see `webhook_receiver.events`
    GET  /healthz                    200 when the ledger's Redis answers, else 503
    GET  /metrics                    Prometheus text: `webhook_receiver.metrics`
    GET  /openapi.json               the OpenAPI description of the above

The callback only says "look now": the collect task reads the outcome from the
provider's polling URL, so nothing in the body but the fact that the task ended is used
(that frees its provider slot at once). Every answer but /metrics is JSON; no input makes the
receiver answer 500. Verified callbacks are recorded by a `CallbackRecorder`, many per
Redis round trip, on the event loop: no thread hops, no per-callback broker client.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pipeline.callbacks import CallbackReport, MalformedCallback, parse_callback
from pipeline.errors import BodyTooLarge, VerificationError
from pipeline.logcontext import job_context
from pipeline.metrics import LedgerCollector
from pipeline.recorder import CallbackOutcome, CallbackRecorder
from pipeline.signing import CallbackClaim, CallbackSigner
from webhook_receiver import metrics
from webhook_receiver.bodies import answer, read_body
from webhook_receiver.events import EVENTS_ROUTE, EventHandlers
from webhook_receiver.metrics import MetricsEndpoint
from webhook_receiver.openapi import openapi_schema

log = logging.getLogger(__name__)

CALLBACK_ROUTE = "/v1/callbacks/bfl/{token}"
MAX_CALLBACK_BYTES = 256 * 1024
JSON_MEDIA_TYPE = "application/json"
JSON_CHARSETS = frozenset({"utf-8", "utf8"})


def create_app(
    *,
    signer: CallbackSigner,
    recorder: CallbackRecorder,
    require_signature: bool = False,
    max_body_bytes: int = MAX_CALLBACK_BYTES,
    events: EventHandlers | None = None,
    start_line: str | None = None,
    ledger_metrics: LedgerCollector | None = None,
) -> Starlette:
    """The receiver app; its collaborators are built by the caller (the composition root).
    With `events`, it also takes storage events; with `ledger_metrics`, `/metrics` shows
    the ledger's gauges. `start_line` is logged as it starts (the callbacks mode). The app
    closes `recorder`, `events` and `ledger_metrics` when it shuts down."""
    receiver = ReceiverHandlers(
        signer,
        recorder,
        require_signature=require_signature,
        max_body_bytes=max_body_bytes,
        events=events,
        start_line=start_line,
        metrics_endpoint=MetricsEndpoint(ledger_metrics),
    )
    routes = [
        Route(CALLBACK_ROUTE, receiver.callback, methods=["POST"]),
        Route("/healthz", receiver.healthz, methods=["GET"]),
        Route(
            "/metrics", receiver.metrics_endpoint.scrape, methods=["GET"], include_in_schema=False
        ),
        Route("/openapi.json", receiver.openapi, methods=["GET"], include_in_schema=False),
    ]
    if events is not None:
        routes.append(Route(EVENTS_ROUTE, events.post, methods=["POST"]))
        routes.append(Route(EVENTS_ROUTE, events.head, methods=["HEAD"]))
    return Starlette(
        lifespan=receiver.lifespan,
        routes=routes,
        exception_handlers={HTTPException: _http_error},
    )


class ReceiverHandlers:
    """The routes' handlers, sharing the signer, the recorder and the receiver's options."""

    def __init__(
        self,
        signer: CallbackSigner,
        recorder: CallbackRecorder,
        *,
        require_signature: bool,
        max_body_bytes: int,
        events: EventHandlers | None = None,
        start_line: str | None = None,
        metrics_endpoint: MetricsEndpoint | None = None,
    ) -> None:
        self.metrics_endpoint = metrics_endpoint or MetricsEndpoint()
        self._events = events
        self._start_line = start_line
        self._signer = signer
        self._recorder = recorder
        self._require_signature = require_signature
        self._max_body_bytes = max_body_bytes
        self._schema = openapi_schema(
            max_body_bytes=max_body_bytes,
            require_signature=require_signature,
            events_max_body_bytes=None if events is None else events.max_body_bytes,
        )

    async def callback(self, request: Request) -> Response:
        """A provider callback, checked in the order the module docstring lists."""
        try:
            body = await read_body(request, self._max_body_bytes)
        except BodyTooLarge:
            metrics.rejected("too_large")
            return answer(413, "request body too large")
        try:
            claim = self._signer.verify(
                request.path_params["token"],
                request.headers,
                body,
                require_signature=self._require_signature,
            )
        except VerificationError as error:
            log.info("callback rejected: %s", error)
            metrics.verification_failed(error)
            return answer(401, "unauthorized")
        if not _is_json(request.headers.get("content-type", "")):
            log.info("callback for %s rejected: content type is not JSON", claim.ref)
            metrics.rejected("media_type")
            return answer(415, "content type must be application/json")
        try:
            report = parse_callback(body)
        except MalformedCallback as error:
            log.info("callback for %s rejected: %s", claim.ref, error)
            metrics.rejected("body")
            return answer(400, "malformed callback body")
        ref, task = claim.ref, report.task_id
        with job_context(
            batch=ref.batch_id, job=ref.job_id, attempt=claim.attempt, provider_task=task
        ):
            return await self._record(claim, report)

    async def _record(self, claim: CallbackClaim, report: CallbackReport) -> Response:
        """Record a verified callback: 200, 404 for an unknown job, 503 when unreachable."""
        try:
            outcome = await self._recorder.record(claim, report)
        except Exception as error:
            # Only the type: Redis errors can name hosts.
            log.error("callback for %s not recorded: %s", claim.ref, type(error).__name__)
            metrics.rejected("unavailable")
            return answer(503, "temporarily unavailable")
        metrics.recorded(outcome)
        if outcome is CallbackOutcome.UNKNOWN:
            return answer(404, "not found")
        log.info("callback for %s attempt %d: %s", claim.ref, claim.attempt, outcome.value)
        return JSONResponse({"status": "ok"})

    async def healthz(self, _: Request) -> Response:
        """200 when the ledger's Redis answers, else 503."""
        try:
            await self._recorder.ping()
        except Exception as error:
            log.warning("health check: Redis does not answer (%s)", type(error).__name__)
            return answer(503, "temporarily unavailable")
        return JSONResponse({"status": "ok"})

    async def openapi(self, _: Request) -> Response:
        """The OpenAPI description, built once with the app's options."""
        return JSONResponse(self._schema)

    @asynccontextmanager
    async def lifespan(self, _: Starlette) -> AsyncIterator[None]:
        """Say the start line as the app starts; close the recorder (and the event
        intake) when it shuts down."""
        if self._start_line:
            log.info("%s", self._start_line)
        yield
        await self._recorder.aclose()
        if self._events is not None:
            self._events.close()
        self.metrics_endpoint.close()


async def _http_error(_: Request, error: Exception) -> Response:
    """Unmatched paths (404) and methods (405) answer JSON like everything else."""
    status_code = error.status_code if isinstance(error, HTTPException) else 400
    headers = error.headers if isinstance(error, HTTPException) else None
    detail = {404: "not found", 405: "method not allowed"}.get(status_code, "bad request")
    return JSONResponse({"detail": detail}, status_code=status_code, headers=headers)


def _is_json(content_type: str) -> bool:
    """`application/json`, optionally with `charset=utf-8` (any case, any spacing), or no
    content type at all: the provider's webhooks are undocumented, and a verified body
    is parsed with bounds whatever it claims to be, so only a declared other type is
    refused."""
    if not content_type.strip():
        return True
    media_type, _, parameters = content_type.partition(";")
    if media_type.strip().lower() != JSON_MEDIA_TYPE:
        return False
    for parameter in parameters.split(";"):
        name, _, value = parameter.partition("=")
        name = name.strip().lower()
        if name == "charset" and value.strip().strip('"').lower() not in JSON_CHARSETS:
            return False
    return True
