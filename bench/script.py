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
import hmac
import secrets
import socket
from collections.abc import Mapping, Sequence
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
    loop = asyncio.get_running_loop()
    secret = secrets.token_urlsafe(24)
    hooks: dict[str, asyncio.Future[str]] = {}

    def hook(task_id: str) -> asyncio.Future[str]:
        return hooks.setdefault(task_id, loop.create_future())

    async def webhook(request: Request) -> Response:
        given = request.headers.get("x-webhook-secret", "")
        if not hmac.compare_digest(given.encode(), secret.encode()):
            return Response(status_code=403)
        body = await request.json()
        done = hook(body.get("task_id") or body["id"])
        if not done.done():
            done.set_result(body["status"])
        return Response()

    listener = socket.create_server(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/hook"
    jobs = [{**body, "webhook_url": url, "webhook_secret": secret} for body in bodies]
    app = Starlette(routes=[Route("/hook", webhook, methods=["POST"])])
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    gate = asyncio.Semaphore(slots)
    async with httpx.AsyncClient(headers={"x-key": key}, timeout=60.0) as client:

        async def one(job: Mapping[str, Any]) -> str:
            async with gate:
                answer = await client.post(provider_url + FILL_PATH, json=job)
                while answer.status_code == 429:
                    await asyncio.sleep(float(answer.headers.get("retry-after", "1")))
                    answer = await client.post(provider_url + FILL_PATH, json=job)
                task = answer.raise_for_status().json()
                status = await asyncio.wait_for(hook(task["id"]), WEBHOOK_TIMEOUT_S)
            if status == "SUCCESS":
                result = (await client.get(task["polling_url"])).raise_for_status().json()
                (await client.get(result["result"]["sample"])).raise_for_status()
            return status

        try:
            while not server.started:
                if serving.done():
                    raise RuntimeError("the webhook server did not start")
                await asyncio.sleep(0.01)
            return list(await asyncio.gather(*(one(job) for job in jobs)))
        finally:
            server.should_exit = True
            await serving
            listener.close()
