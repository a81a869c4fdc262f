"""The dashboard app: its routes, the token check, and its headers.

    GET  /                               batches (newest first, paginated) and accounts
    GET  /batches/{batch}                a batch: progress, pace, ETA, cost, and a page of
                                         its jobs (`?page=N`, `?failed=1`: failed only)
    GET  /batches/{batch}/thumbs/{kind}  a job's preview (`?job=ID&v=ATTEMPT`; kind:
                                         image, mask or output), read from S3 here
    POST /batches/{batch}/retry          put the batch's failed jobs (`?job=ID`: one
                                         job) back in line, then back to the batch page
    GET  /api/batches, /api/batches/{batch}, /api/accounts   the same, as JSON
    POST /api/batches/{batch}/retry      the same retry, answering {"retried": N}
    GET  /healthz                        200 when the ledger's Redis answers (no token)

Every other route needs the token (`webhook_receiver.dashboard.auth`). Pages refresh
their live parts without reloading (`static/live.js`). Each answer says how long the app
took in a `Server-Timing` header; pages are never cached, previews are (their URL names
the job's attempt).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import redis
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipeline.balances import AccountBalance
from pipeline.errors import StorageUnavailable
from pipeline.ledger import Ledger
from pipeline.secret import Secret
from pipeline.thumbnails import Thumbnails
from webhook_receiver.dashboard import api
from webhook_receiver.dashboard.auth import token_middleware
from webhook_receiver.dashboard.pages import Pages

log = logging.getLogger(__name__)

HERE = Path(__file__).parent
# Balances come from the provider, one request per account: read in the background.
BALANCES_EVERY_S = 60.0
CONTENT_SECURITY_POLICY = "default-src 'self'; frame-ancestors 'none'; form-action 'self'"


@dataclass
class DashboardSources:
    """What the dashboard reads: the ledger, S3 previews, and each account's balance."""

    ledger: Ledger
    thumbnails: Thumbnails
    # account -> flavour, for the accounts table
    flavors: Mapping[str, str]
    # Reads every account's balance (blocking; run in a worker thread).
    read_balances: Callable[[], list[AccountBalance]]
    clock: Callable[[], float] = time.time
    balances: dict[str, AccountBalance] = field(default_factory=dict)

    async def keep_balances(self, every_s: float = BALANCES_EVERY_S) -> None:
        """Refresh `balances` now and then every `every_s`, until cancelled."""
        while True:
            try:
                fresh = await anyio.to_thread.run_sync(self.read_balances)
            except Exception:  # a balance is a nicety: never stop the app for it
                log.exception("reading the accounts' balances failed")
            else:
                self.balances = {balance.account: balance for balance in fresh}
            await anyio.sleep(every_s)


def create_app(sources: DashboardSources, *, token: Secret) -> Starlette:
    """The dashboard over `sources`; every route but /healthz needs `token`. The app
    closes the ledger when it shuts down."""
    templates = Jinja2Templates(
        directory=HERE / "templates",
        context_processors=[lambda request: {"now": sources.clock()}],
    )
    pages = Pages(sources, templates)
    json_api = api.JsonApi(sources)
    routes = [
        Route("/", pages.batches, methods=["GET"]),
        Route("/batches/{batch}", pages.batch, methods=["GET"]),
        Route("/batches/{batch}/thumbs/{kind}", pages.thumbnail, methods=["GET"]),
        Route("/batches/{batch}/retry", pages.retry, methods=["POST"]),
        Route("/api/batches", json_api.batches, methods=["GET"]),
        Route("/api/batches/{batch}", json_api.batch, methods=["GET"]),
        Route("/api/batches/{batch}/retry", json_api.retry, methods=["POST"]),
        Route("/api/accounts", json_api.accounts, methods=["GET"]),
        Route("/healthz", pages.healthz, methods=["GET"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(sources.keep_balances)
            yield
            tasks.cancel_scope.cancel()
        sources.ledger.close()

    return Starlette(
        routes=routes,
        middleware=[Middleware(PageHeaders), *token_middleware(token)],
        lifespan=lifespan,
        exception_handlers={redis.RedisError: _unavailable, StorageUnavailable: _unavailable},
    )


def _unavailable(request: Request, error: Exception) -> Response:
    """Redis or S3 out of reach: 503, saying which, for the page to be asked again."""
    what = "the ledger's Redis" if isinstance(error, redis.RedisError) else "S3"
    log.warning("dashboard: %s cannot be reached: %s", what, error)
    return PlainTextResponse(f"{what} cannot be reached; try again shortly", status_code=503)


class PageHeaders:
    """Adds `Server-Timing` (the app's time for the request) and the content policy."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                took_ms = (time.perf_counter() - started) * 1000
                headers.append("Server-Timing", f"app;dur={took_ms:.1f}")
                headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
                headers.setdefault("Cache-Control", "no-store")
            await send(message)

        await self._app(scope, receive, send_with_headers)
