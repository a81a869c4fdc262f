"""The provider's HTTP API: thin endpoints that authenticate, parse and call `Provider`.

The same endpoints are served once per flavour: BFL's under `/v1` with `x-key`, and
CometAPI's under `/flux/v1` with `Authorization: Bearer`. Delivery URLs live outside
both, unauthenticated but signed. Injected faults (`emulator.faults`) strike here,
before or after the `Provider` call, so the provider itself never knows of them.
Withdrawn endpoints (`EmulatorConfig.withdrawn`) are left out of both flavours, so
they answer 404 `{"detail": "Not Found"}` before any key is checked, as FastAPI
answers for a path the provider no longer serves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from emulator.accounts import RETRY_AFTER_S
from emulator.auth import KeyCheck, bearer_token, x_key
from emulator.delivery import DELIVERY_PREFIX
from emulator.errors import ServerError, TooManyRequests
from emulator.faults import FaultInjector
from emulator.provider import Provider
from emulator.schemas import FINETUNE_ID_FIELDS, RESULT_QUERY_FIELDS
from emulator.tasks import Caller, Sample
from emulator.validation import parse_json_object, validated


@dataclass(frozen=True)
class Flavor:
    """One way the API is served: its path prefix and where requests carry the key."""

    api_prefix: str
    read_key: Callable[[Request], str | None]


FLAVORS = (Flavor("/v1", x_key), Flavor("/flux/v1", bearer_token))
INJECTED_500_DETAIL = "Internal Server Error"
INJECTED_429_DETAIL = "Too many requests, please retry later"


class ProviderApi:
    """The API endpoints of one flavour."""

    def __init__(
        self,
        provider: Provider,
        keys: KeyCheck,
        flavor: Flavor,
        *,
        faults: FaultInjector,
        public_url: str | None,
        withdrawn: Collection[str] = (),
    ) -> None:
        self._provider = provider
        self._faults = faults
        self._keys = keys
        self._flavor = flavor
        self._public_url = public_url.rstrip("/") if public_url else None
        self._withdrawn = frozenset(withdrawn)

    def mount(self) -> Mount:
        """The flavour's endpoints under its prefix, less the withdrawn ones."""
        return Mount(
            self._flavor.api_prefix,
            routes=[route for route in self._routes() if route.path[1:] not in self._withdrawn],
        )

    def _routes(self) -> list[Route]:
        return [
            Route("/flux-pro-1.0-fill-finetuned", self.fill_finetuned, methods=["POST"]),
            Route("/flux-pro-1.0-fill", self.fill, methods=["POST"]),
            Route("/get_result", self.get_result, methods=["GET"]),
            Route("/finetune", self.finetune, methods=["POST"]),
            Route("/finetune_details", self.finetune_details, methods=["GET"]),
            Route("/my_finetunes", self.my_finetunes, methods=["GET"]),
            Route("/delete_finetune", self.delete_finetune, methods=["POST"]),
            Route("/credits", self.credits, methods=["GET"]),
        ]

    async def fill_finetuned(self, request: Request) -> Response:
        return await self._submit_fill(request, finetuned=True)

    async def fill(self, request: Request) -> Response:
        return await self._submit_fill(request, finetuned=False)

    async def get_result(self, request: Request) -> Response:
        caller = self._caller(request)
        query = validated(request.query_params, RESULT_QUERY_FIELDS, location="query")
        await _pause(self._faults.get_result_delay_s())
        if self._faults.fail_get_result():
            raise ServerError(INJECTED_500_DETAIL)
        if self._faults.expire_task():
            self._provider.expire(query["id"])
        return JSONResponse(self._provider.get_result(caller, query["id"]))

    async def finetune(self, request: Request) -> Response:
        caller = self._caller(request)
        body = parse_json_object(await request.body())
        return JSONResponse(await self._provider.create_finetune(caller, body))

    async def finetune_details(self, request: Request) -> Response:
        caller = self._caller(request)
        query = validated(request.query_params, FINETUNE_ID_FIELDS, location="query")
        return JSONResponse(self._provider.finetune_details(caller, query["finetune_id"]))

    async def my_finetunes(self, request: Request) -> Response:
        return JSONResponse(self._provider.my_finetunes(self._caller(request)))

    async def delete_finetune(self, request: Request) -> Response:
        caller = self._caller(request)
        body = parse_json_object(await request.body())
        return JSONResponse(self._provider.delete_finetune(caller, body))

    async def credits(self, request: Request) -> Response:
        return JSONResponse(self._provider.credits(self._caller(request)))

    async def _submit_fill(self, request: Request, *, finetuned: bool) -> Response:
        caller = self._caller(request)
        body = parse_json_object(await request.body())
        if self._faults.refuse_submit():
            raise TooManyRequests(INJECTED_429_DETAIL, retry_after_s=RETRY_AFTER_S)
        if self._faults.fail_submit():
            raise ServerError(INJECTED_500_DETAIL)
        answer = await self._provider.submit_fill(caller, body, finetuned=finetuned)
        if self._faults.fail_after_create():
            raise ServerError(INJECTED_500_DETAIL)
        return JSONResponse(answer)

    def _caller(self, request: Request) -> Caller:
        key = self._keys.authenticate(self._flavor.read_key(request))
        base_url = self._public_url or str(request.base_url).rstrip("/")
        return Caller(key, base_url, self._flavor.api_prefix)


def delivery_route(provider: Provider, faults: FaultInjector) -> Route:
    """`GET /delivery/<task_id>/<filename>?exp=&sig=`: a result behind a signed URL."""

    async def deliver(request: Request) -> Response:
        sample = provider.sample(
            request.path_params["task_id"],
            request.path_params["filename"],
            exp=request.query_params.get("exp"),
            sig=request.query_params.get("sig"),
        )
        if faults.fail_delivery():
            raise ServerError(INJECTED_500_DETAIL)
        if faults.truncate_delivery():
            return _truncated(sample)
        return Response(sample.data, media_type=sample.media_type)

    return Route(f"{DELIVERY_PREFIX}/{{task_id}}/{{filename}}", deliver, methods=["GET"])


def api_routes(
    provider: Provider,
    keys: KeyCheck,
    *,
    faults: FaultInjector,
    public_url: str | None,
    withdrawn: Collection[str] = (),
) -> list[BaseRoute]:
    """Every flavour of the provider API, less the `withdrawn` endpoints, and the
    delivery route."""
    mounts: list[BaseRoute] = [
        ProviderApi(
            provider, keys, flavor, faults=faults, public_url=public_url, withdrawn=withdrawn
        ).mount()
        for flavor in FLAVORS
    ]
    return [*mounts, delivery_route(provider, faults)]


def _truncated(sample: Sample) -> Response:
    """Half the result under the whole result's Content-Length: a cut-off download."""
    cut = sample.data[: len(sample.data) // 2]
    return Response(
        cut, media_type=sample.media_type, headers={"content-length": str(len(sample.data))}
    )


async def _pause(delay_s: float) -> None:
    if delay_s > 0:
        await asyncio.sleep(delay_s)
