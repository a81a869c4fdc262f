"""The receiver: provider callbacks in, verified on the raw bytes, answered at once.

    POST /v1/callbacks/bfl/{token}   a provider callback; 200 when accepted (also for
                                     duplicates and stale attempts), 401 when any check
                                     fails, 404 for a job the ledger does not know,
                                     413 when the body is too large
    GET  /healthz                    200 when the ledger's Redis answers

The callback only says "look now": the collect task reads the outcome from the
provider's polling URL, so nothing in the body is trusted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from pipeline.callbacks import MalformedCallback, parse_callback
from pipeline.errors import VerificationError
from pipeline.jobs import CallbackOutcome, accept_callback
from pipeline.ledger import Ledger
from pipeline.models import JobRef
from pipeline.signing import CallbackSigner

log = logging.getLogger(__name__)

CALLBACK_ROUTE = "/v1/callbacks/bfl/{token}"
MAX_CALLBACK_BYTES = 256 * 1024

EnqueueCollect = Callable[[JobRef, int], None]


class BodyTooLarge(Exception):
    """The request body is over the receiver's limit."""


def create_app(
    *,
    signer: CallbackSigner,
    ledger: Ledger,
    enqueue_collect: EnqueueCollect,
    require_signature: bool = False,
    max_body_bytes: int = MAX_CALLBACK_BYTES,
) -> Starlette:
    """The receiver app; its collaborators are built by the caller (the composition root)."""

    async def callback(request: Request) -> JSONResponse:
        try:
            body = await _read_body(request, max_body_bytes)
        except BodyTooLarge:
            return _answer(413, "request body too large")
        try:
            claim = signer.verify(
                request.path_params["token"],
                request.headers,
                body,
                require_signature=require_signature,
            )
        except VerificationError as error:
            log.info("callback rejected: %s", error)
            return _answer(401, "unauthorized")
        try:
            report = parse_callback(body)
        except MalformedCallback as error:
            log.info("callback for %s rejected: %s", claim.ref, error)
            return _answer(400, "malformed callback body")
        outcome = await run_in_threadpool(accept_callback, ledger, claim, report)
        if outcome is CallbackOutcome.UNKNOWN:
            return _answer(404, "not found")
        if outcome is CallbackOutcome.COLLECT:
            await run_in_threadpool(enqueue_collect, claim.ref, claim.attempt)
        log.info("callback for %s attempt %d: %s", claim.ref, claim.attempt, outcome.value)
        return JSONResponse({"status": "ok"})

    async def healthz(_: Request) -> JSONResponse:
        await run_in_threadpool(ledger.redis.ping)
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route(CALLBACK_ROUTE, callback, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )


async def _read_body(request: Request, max_bytes: int) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _answer(status_code: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status_code)
