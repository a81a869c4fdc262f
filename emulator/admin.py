"""The emulator's admin API, off the provider's paths: `GET /admin/stats`.

Guarded by the `x-admin-token` header; with no `admin_token` configured the admin
routes answer 404, as if they did not exist. Stats name the API keys verbatim (they
are the emulator's own test keys), so only the admin token holder sees them.
"""

from __future__ import annotations

import secrets

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from emulator.errors import Forbidden, NotFound
from emulator.provider import Provider

ADMIN_TOKEN_HEADER = "x-admin-token"  # noqa: S105 (a header name)


def admin_routes(provider: Provider, admin_token: str) -> list[Route]:
    """The admin endpoints: per-key task counters, high-water marks and charges."""

    async def stats(request: Request) -> Response:
        _check_token(admin_token, request.headers.get(ADMIN_TOKEN_HEADER, ""))
        return JSONResponse(provider.stats())

    return [Route("/admin/stats", stats, methods=["GET"])]


def _check_token(admin_token: str, presented: str) -> None:
    if not admin_token:
        raise NotFound("Not Found")
    if not secrets.compare_digest(presented.encode(), admin_token.encode()):
        raise Forbidden("Invalid admin token")
