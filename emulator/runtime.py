"""The emulator's process resources, opened and closed by the app's lifespan.

Two thread pools keep image work off the event loop: one decodes the images a request
carries, unless they are small enough to decode on the loop (so a submit is validated
and answered without waiting behind queued renders, as a provider's API front end does
not wait for its GPUs), the other does the tasks' work (inpainting, training). One
HTTP client sends every webhook; background jobs (tasks running towards Ready) are
tracked so shutdown can cancel them.
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

# Threads that decode the images in request bodies: short work, kept apart from renders.
REQUEST_THREADS = 2
# Payloads up to this many characters (base64 of ~190 KB: a PNG of up to about half a
# megapixel) are decoded on the event loop itself: their decoding takes a millisecond or
# two, less than the hop to a pool thread and back on busy cores. Larger ones would hold
# up other requests, so they go to the request pool.
INLINE_READ_MAX_CHARS = 256 * 1024

T = TypeVar("T")
Ts = TypeVarTuple("Ts")


class NotStarted(RuntimeError):
    """The runtime was used outside the app's lifespan."""


class Runtime:
    """Thread pools, webhook sender and background jobs; usable inside `async with`."""

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
        self._request_pool: ThreadPoolExecutor | None = None
        self._http: httpx.AsyncClient | None = None
        self._webhooks: WebhookSender | None = None
        self._jobs: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> Runtime:
        config = self._config
        self._pool = ThreadPoolExecutor(config.worker_threads, thread_name_prefix="emulator")
        self._request_pool = ThreadPoolExecutor(
            REQUEST_THREADS, thread_name_prefix="emulator-request"
        )
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
        for pool in (self._pool, self._request_pool):
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
        self._pool = self._request_pool = self._http = self._webhooks = None

    @property
    def webhooks(self) -> WebhookSender:
        if self._webhooks is None:
            raise NotStarted("the emulator runtime is not started")
        return self._webhooks

    async def run_cpu(self, function: Callable[[*Ts], T], *args: *Ts) -> T:
        """Run a task's work, `function(*args)`, in the task pool."""
        return await _run_in(self._pool, function, *args)

    async def read_request(self, function: Callable[[*Ts], T], *args: *Ts, size: int) -> T:
        """Decode a request's payload of `size` characters, `function(*args)`: on the
        event loop if it is small (`INLINE_READ_MAX_CHARS`), else in the request pool."""
        if self._request_pool is not None and size <= INLINE_READ_MAX_CHARS:
            return function(*args)
        return await _run_in(self._request_pool, function, *args)

    def spawn(self, job: Coroutine[Any, Any, None]) -> None:
        """Run `job` in the background, never blocking the caller; shutdown cancels it."""
        task = asyncio.create_task(job)
        self._jobs.add(task)
        task.add_done_callback(self._jobs.discard)


async def _run_in(pool: ThreadPoolExecutor | None, function: Callable[[*Ts], T], *args: *Ts) -> T:
    if pool is None:
        raise NotStarted("the emulator runtime is not started")
    return await asyncio.get_running_loop().run_in_executor(pool, function, *args)
