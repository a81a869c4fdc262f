"""The baseline: a webhook-driven asyncio client, as a careful user could write it.

One `httpx.AsyncClient` and a `slots`-wide semaphore. Every job's body is built before
the first POST. A job takes the semaphore, POSTs (a 429 is retried after its
`Retry-After`), and waits for its webhook, which an in-process Starlette app receives
(uvicorn, a free 127.0.0.1 port, the same event loop) and checks for the secret in
constant time. The semaphore is released as soon as the webhook arrives. The result is
downloaded afterwards, outside the semaphore: `get_result` on the task's
`polling_url`, then its `sample` URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import secrets
import socket
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

FILL_PATH = "/v1/flux-pro-1.0-fill-finetuned"
WEBHOOK_TIMEOUT_S = 600.0


async def run_script(
    provider_url: str, key: str, bodies: Sequence[Mapping[str, Any]], *, slots: int
) -> list[str]:
    """Run every body through the provider, `slots` at a time; the tasks' final
    statuses as their webhooks said."""
    hooks = Webhooks(secrets.token_urlsafe(24))
    gate = asyncio.Semaphore(slots)
    async with (
        webhook_server(hooks) as url,
        httpx.AsyncClient(headers={"x-key": key}, timeout=60.0) as client,
    ):
        jobs = [{**body, "webhook_url": url, "webhook_secret": hooks.secret} for body in bodies]
        runs = (one_job(client, provider_url + FILL_PATH, job, gate, hooks) for job in jobs)
        return list(await asyncio.gather(*runs))


class Webhooks:
    """The webhooks received, by task id, as futures of their statuses."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self._statuses: dict[str, asyncio.Future[str]] = {}

    def status(self, task_id: str) -> asyncio.Future[str]:
        return self._statuses.setdefault(task_id, asyncio.get_running_loop().create_future())

    async def receive(self, request: Request) -> Response:
        given = request.headers.get("x-webhook-secret", "")
        if not hmac.compare_digest(given.encode(), self.secret.encode()):
            return Response(status_code=403)
        body = await request.json()
        status = self.status(body.get("task_id") or body["id"])
        if not status.done():
            status.set_result(body["status"])
        return Response()


@contextlib.asynccontextmanager
async def webhook_server(hooks: Webhooks) -> AsyncIterator[str]:
    """Serve `hooks` on a free loopback port in this event loop; yields the URL."""
    listener = socket.create_server(("127.0.0.1", 0))
    app = Starlette(routes=[Route("/hook", hooks.receive, methods=["POST"])])
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        while not server.started:
            if serving.done():
                raise RuntimeError("the webhook server did not start")
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/hook"
    finally:
        server.should_exit = True
        await serving
        listener.close()


async def one_job(
    client: httpx.AsyncClient,
    fill_url: str,
    job: Mapping[str, Any],
    gate: asyncio.Semaphore,
    hooks: Webhooks,
) -> str:
    """Hold a slot from the POST to the webhook, then download the result."""
    async with gate:
        answer = await client.post(fill_url, json=job)
        while answer.status_code == 429:
            await asyncio.sleep(float(answer.headers.get("retry-after", "1")))
            answer = await client.post(fill_url, json=job)
        task = answer.raise_for_status().json()
        status = await asyncio.wait_for(hooks.status(task["id"]), WEBHOOK_TIMEOUT_S)
    if status == "SUCCESS":
        result = (await client.get(task["polling_url"])).raise_for_status().json()
        (await client.get(result["result"]["sample"])).raise_for_status()
    return status
