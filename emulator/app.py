"""The emulator as a Starlette app, composed by `create_app`."""

from __future__ import annotations

import random
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from emulator.admin import admin_routes
from emulator.auth import KeyCheck
from emulator.config import EmulatorConfig
from emulator.errors import ApiError
from emulator.faults import FaultInjector
from emulator.provider import Provider
from emulator.routes import api_routes
from emulator.runtime import Runtime

# Base64 images of a few tens of megapixels fit; anything larger is refused with 413.
MAX_REQUEST_BODY_BYTES = 128 * 1024 * 1024


def create_app(
    config: EmulatorConfig,
    *,
    clock: Callable[[], float] | None = None,
    webhook_transport: httpx.AsyncBaseTransport | None = None,
) -> Starlette:
    """The emulated provider. `clock` (unix seconds, default `time.time`) stamps and
    expires tasks and URLs; `webhook_transport` replaces the network for webhooks."""
    faults = FaultInjector(config.faults)
    runtime = Runtime(config, faults=faults, webhook_transport=webhook_transport)
    rng = random.Random(config.seed)
    provider = Provider(config, clock=clock or time.time, runtime=runtime, rng=rng)
    keys = KeyCheck.from_config(config)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with runtime:
            yield

    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            *api_routes(
                provider,
                keys,
                faults=faults,
                public_url=config.public_url,
                withdrawn=config.withdrawn,
            ),
            *admin_routes(provider, faults, keys, config.admin_token),
        ],
        exception_handlers={ApiError: api_error, HTTPException: http_error},
        lifespan=lifespan,
        max_body_size=MAX_REQUEST_BODY_BYTES,
    )


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def api_error(request: Request, error: Exception) -> Response:
    """An `ApiError` as the provider answers it."""
    if not isinstance(error, ApiError):  # Starlette routes only ApiErrors here
        raise error
    return JSONResponse(error.body(), status_code=error.status_code, headers=error.headers())


async def http_error(request: Request, error: Exception) -> Response:
    """Routing errors (404, 405) in the provider's JSON form rather than plain text."""
    if not isinstance(error, HTTPException):  # Starlette routes only HTTPExceptions here
        raise error
    return JSONResponse(
        {"detail": error.detail}, status_code=error.status_code, headers=error.headers
    )
