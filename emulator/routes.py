"""The provider's HTTP API: thin endpoints that authenticate, parse and call `Provider`.

The same endpoints are served once per flavour: BFL's under `/v1` with `x-key`, and
CometAPI's under `/flux/v1` with `Authorization: Bearer`. Delivery URLs live outside
both, unauthenticated but signed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from emulator.auth import KeyCheck, bearer_token, x_key
from emulator.delivery import DELIVERY_PREFIX
from emulator.provider import Provider
from emulator.schemas import FINETUNE_ID_FIELDS, RESULT_QUERY_FIELDS
from emulator.tasks import Caller
from emulator.validation import parse_json_object, validated


@dataclass(frozen=True)
class Flavor:
    """One way the API is served: its path prefix and where requests carry the key."""

    api_prefix: str
    read_key: Callable[[Request], str | None]


FLAVORS = (Flavor("/v1", x_key), Flavor("/flux/v1", bearer_token))


class ProviderApi:
    """The API endpoints of one flavour."""

    def __init__(
        self, provider: Provider, keys: KeyCheck, flavor: Flavor, *, public_url: str | None
    ) -> None:
        self._provider = provider
        self._keys = keys
        self._flavor = flavor
        self._public_url = public_url.rstrip("/") if public_url else None

    def mount(self) -> Mount:
        return Mount(
            self._flavor.api_prefix,
            routes=[
                Route("/flux-pro-1.0-fill-finetuned", self.fill_finetuned, methods=["POST"]),
                Route("/flux-pro-1.0-fill", self.fill, methods=["POST"]),
                Route("/get_result", self.get_result, methods=["GET"]),
                Route("/finetune", self.finetune, methods=["POST"]),
                Route("/finetune_details", self.finetune_details, methods=["GET"]),
                Route("/my_finetunes", self.my_finetunes, methods=["GET"]),
                Route("/delete_finetune", self.delete_finetune, methods=["POST"]),
                Route("/credits", self.credits, methods=["GET"]),
            ],
        )

    async def fill_finetuned(self, request: Request) -> Response:
        return await self._submit_fill(request, finetuned=True)

    async def fill(self, request: Request) -> Response:
        return await self._submit_fill(request, finetuned=False)

    async def get_result(self, request: Request) -> Response:
        caller = self._caller(request)
        query = validated(request.query_params, RESULT_QUERY_FIELDS, location="query")
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
        return JSONResponse(await self._provider.submit_fill(caller, body, finetuned=finetuned))

    def _caller(self, request: Request) -> Caller:
        key = self._keys.authenticate(self._flavor.read_key(request))
        base_url = self._public_url or str(request.base_url).rstrip("/")
        return Caller(key, base_url, self._flavor.api_prefix)


def delivery_route(provider: Provider) -> Route:
    """`GET /delivery/<task_id>/<filename>?exp=&sig=`: a result behind a signed URL."""

    async def deliver(request: Request) -> Response:
        sample = provider.sample(
            request.path_params["task_id"],
            request.path_params["filename"],
            exp=request.query_params.get("exp"),
            sig=request.query_params.get("sig"),
        )
        return Response(sample.data, media_type=sample.media_type)

    return Route(f"{DELIVERY_PREFIX}/{{task_id}}/{{filename}}", deliver, methods=["GET"])


def api_routes(provider: Provider, keys: KeyCheck, *, public_url: str | None) -> list[BaseRoute]:
    """Every flavour of the provider API, and the delivery route."""
    mounts: list[BaseRoute] = [
        ProviderApi(provider, keys, flavor, public_url=public_url).mount() for flavor in FLAVORS
    ]
    return [*mounts, delivery_route(provider)]
