"""The emulator's process resources, opened and closed by the app's lifespan.

One thread pool keeps image work (decoding, inpainting, training) off the event loop;
one HTTP client sends every webhook; background jobs (tasks running towards Ready)
are tracked so shutdown can cancel them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any, TypeVar, TypeVarTuple

import httpx

from emulator.config import EmulatorConfig
from emulator.faults import FaultInjector
from emulator.webhooks import WebhookSender

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


class NotStarted(RuntimeError):
    """The runtime was used outside the app's lifespan."""


class Runtime:
    """Thread pool, webhook sender and background jobs; usable inside `async with`."""

    def __init__(
        self,
        config: EmulatorConfig,
        *,
        faults: FaultInjector | None = None,
        webhook_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._config = config
        self._faults = faults or FaultInjector(config.faults)
        self._webhook_transport = webhook_transport
        self._pool: ThreadPoolExecutor | None = None
        self._http: httpx.AsyncClient | None = None
        self._webhooks: WebhookSender | None = None
        self._jobs: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Runtime:
        config = self._config
        self._pool = ThreadPoolExecutor(config.worker_threads, thread_name_prefix="emulator")
        self._http = httpx.AsyncClient(transport=self._webhook_transport, follow_redirects=False)
        self._webhooks = WebhookSender(
            self._http,
            shape=config.webhook_shape,
            sign=config.webhook_hmac,
            retries=config.webhook_retries,
            backoff_s=config.webhook_retry_backoff_s,
            faults=self._faults,
        )
        return self

    async def __aexit__(
        self,
        error_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        for job in self._jobs:
            job.cancel()
        await asyncio.gather(*self._jobs, return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = self._http = self._webhooks = None

    @property
    def webhooks(self) -> WebhookSender:
        if self._webhooks is None:
            raise NotStarted("the emulator runtime is not started")
        return self._webhooks

    async def run_cpu(self, function: Callable[[*Ts], T], *args: *Ts) -> T:
        """Run `function(*args)` in the image thread pool."""
        if self._pool is None:
            raise NotStarted("the emulator runtime is not started")
        return await asyncio.get_running_loop().run_in_executor(self._pool, function, *args)

    def spawn(self, job: Coroutine[Any, Any, None]) -> None:
        """Run `job` in the background, never blocking the caller; shutdown cancels it."""
        task = asyncio.create_task(job)
        self._jobs.add(task)
        task.add_done_callback(self._jobs.discard)
