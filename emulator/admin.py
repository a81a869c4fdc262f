"""The emulator's admin API, off the provider's paths:

    GET  /admin/stats    per-key task counters, high-water marks and charges
    GET  /admin/tasks    every known task, oldest first: id, owner, status, seed,
                         created_at (accepted), finished_at (turned final), webhook_at
                         (its webhook first answered 2xx; null until then), epoch seconds
    GET  /admin/faults   the injected faults now in force (`emulator.faults.Faults`)
    PUT  /admin/faults   change some of them: a JSON object of fault names and values;
                         422 lists every unknown or bad field, and nothing changes
    GET  /admin/rendering
                         how fills submitted now are rendered (`emulator.rendering`):
                         `{"drift", "result_scale"}`
    PUT  /admin/rendering
                         change some of them, as for faults; tasks already accepted
                         keep theirs
    POST /admin/expire   `{"task_id"}`: forget that task now (get_result then says
                         `Task not found`); 404 if it is not known
    PUT  /admin/accounts/credits
                         `{"key", "credits"}`: set that key's balance now (to drain an
                         account into 402s or top it up); answers `{"credits"}`; 404 if
                         the key is not accepted, 422 for a bad body

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

from emulator.auth import KeyCheck
from emulator.errors import Forbidden, NotFound
from emulator.faults import FaultInjector
from emulator.provider import Provider
from emulator.schemas import ACCOUNT_CREDITS_FIELDS, EXPIRE_FIELDS
from emulator.validation import parse_json_object, validated

ADMIN_TOKEN_HEADER = "x-admin-token"  # noqa: S105 (a header name)

Endpoint = Callable[[Request], Awaitable[Response]]


def admin_routes(
    provider: Provider, faults: FaultInjector, keys: KeyCheck, admin_token: str
) -> list[Route]:
    """The admin endpoints, each behind the admin token."""
    return AdminApi(provider, faults, keys, admin_token).routes()


class AdminApi:
    """The admin endpoints over one provider, its faults and its accepted keys."""

    def __init__(
        self, provider: Provider, faults: FaultInjector, keys: KeyCheck, admin_token: str
    ) -> None:
        self._provider = provider
        self._faults = faults
        self._keys = keys
        self._admin_token = admin_token

    def routes(self) -> list[Route]:
        guarded = self._guarded
        return [
            Route("/admin/stats", guarded(self.stats), methods=["GET"]),
            Route("/admin/tasks", guarded(self.tasks), methods=["GET"]),
            Route("/admin/faults", guarded(self.get_faults), methods=["GET"]),
            Route("/admin/faults", guarded(self.put_faults), methods=["PUT"]),
            Route("/admin/rendering", guarded(self.get_rendering), methods=["GET"]),
            Route("/admin/rendering", guarded(self.put_rendering), methods=["PUT"]),
            Route("/admin/expire", guarded(self.expire), methods=["POST"]),
            Route("/admin/accounts/credits", guarded(self.set_credits), methods=["PUT"]),
        ]

    def _guarded(self, endpoint: Endpoint) -> Endpoint:
        async def checked(request: Request) -> Response:
            _check_token(self._admin_token, request.headers.get(ADMIN_TOKEN_HEADER, ""))
            return await endpoint(request)

        return checked

    async def stats(self, request: Request) -> Response:
        return JSONResponse(self._provider.stats())

    async def tasks(self, request: Request) -> Response:
        return JSONResponse(self._provider.task_list())

    async def get_faults(self, request: Request) -> Response:
        return JSONResponse(self._faults.faults.as_json())

    async def put_faults(self, request: Request) -> Response:
        changes = parse_json_object(await request.body())
        return JSONResponse(self._faults.update(changes).as_json())

    async def get_rendering(self, request: Request) -> Response:
        return JSONResponse(self._provider.rendering().as_json())

    async def put_rendering(self, request: Request) -> Response:
        changes = parse_json_object(await request.body())
        return JSONResponse(self._provider.update_rendering(changes).as_json())

    async def expire(self, request: Request) -> Response:
        task_id = validated(parse_json_object(await request.body()), EXPIRE_FIELDS)["task_id"]
        if not self._provider.expire(task_id):
            raise NotFound(f"Task {task_id} not found")
        return JSONResponse({"expired": task_id})

    async def set_credits(self, request: Request) -> Response:
        """Set a key's balance; the key itself is never echoed back."""
        body = validated(parse_json_object(await request.body()), ACCOUNT_CREDITS_FIELDS)
        if not self._keys.accepts(body["key"]):
            raise NotFound("No account for that key")
        return JSONResponse(self._provider.set_credits(body["key"], body["credits"]))


def _check_token(admin_token: str, presented: str) -> None:
    if not admin_token:
        raise NotFound("Not Found")
    if not secrets.compare_digest(presented.encode(), admin_token.encode()):
        raise Forbidden("Invalid admin token")
