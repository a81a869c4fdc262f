"""The emulator's admin API, off the provider's paths:

    GET  /admin/stats    per-key task counters, high-water marks and charges
    GET  /admin/tasks    every known task, oldest first: id, owner, status, seed,
                         created_at (accepted), finished_at (turned final), webhook_at
                         (its webhook first answered 2xx; null until then), epoch seconds
    GET  /admin/faults   the injected faults now in force (`emulator.faults.Faults`)
    PUT  /admin/faults   change some of them: a JSON object of fault names and values;
                         422 lists every unknown or bad field, and nothing changes
    POST /admin/expire   `{"task_id"}`: forget that task now (get_result then says
                         `Task not found`); 404 if it is not known

Guarded by the `x-admin-token` header; with no `admin_token` configured the admin
routes answer 404, as if they did not exist. Stats name the API keys verbatim (they
are the emulator's own test keys), so only the admin token holder sees them.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from emulator.errors import Forbidden, NotFound
from emulator.faults import FaultInjector
from emulator.provider import Provider
from emulator.schemas import EXPIRE_FIELDS
from emulator.validation import parse_json_object, validated

ADMIN_TOKEN_HEADER = "x-admin-token"  # noqa: S105 (a header name)

Endpoint = Callable[[Request], Awaitable[Response]]


def admin_routes(provider: Provider, faults: FaultInjector, admin_token: str) -> list[Route]:
    """The admin endpoints, each behind the admin token."""

    def guarded(endpoint: Endpoint) -> Endpoint:
        async def checked(request: Request) -> Response:
            _check_token(admin_token, request.headers.get(ADMIN_TOKEN_HEADER, ""))
            return await endpoint(request)

        return checked

    async def stats(request: Request) -> Response:
        return JSONResponse(provider.stats())

    async def tasks(request: Request) -> Response:
        return JSONResponse(provider.task_list())

    async def get_faults(request: Request) -> Response:
        return JSONResponse(faults.faults.as_json())

    async def put_faults(request: Request) -> Response:
        changes = parse_json_object(await request.body())
        return JSONResponse(faults.update(changes).as_json())

    async def expire(request: Request) -> Response:
        task_id = validated(parse_json_object(await request.body()), EXPIRE_FIELDS)["task_id"]
        if not provider.expire(task_id):
            raise NotFound(f"Task {task_id} not found")
        return JSONResponse({"expired": task_id})

    return [
        Route("/admin/stats", guarded(stats), methods=["GET"]),
        Route("/admin/tasks", guarded(tasks), methods=["GET"]),
        Route("/admin/faults", guarded(get_faults), methods=["GET"]),
        Route("/admin/faults", guarded(put_faults), methods=["PUT"]),
        Route("/admin/expire", guarded(expire), methods=["POST"]),
    ]


def _check_token(admin_token: str, presented: str) -> None:
    if not admin_token:
        raise NotFound("Not Found")
    if not secrets.compare_digest(presented.encode(), admin_token.encode()):
        raise Forbidden("Invalid admin token")
