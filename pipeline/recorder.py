"""Verified callbacks into the ledger, many per round trip (group commit).

The receiver answers each callback only once the ledger has it, and a Redis round trip
costs far more than verifying a callback. So callbacks that arrive while one batch is
in flight wait for the next, and each batch is one run of the `accept_callbacks`
script: it records every callback, gives the slots of the tasks that ended back and
fills them (their submits go to the outbox), and queues each first final callback's
collect. Nothing waits on a timer: a callback arriving when no batch is in flight goes
at once, so a lone callback costs one round trip and a burst one round trip per batch.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from pipeline.callbacks import CallbackReport
from pipeline.ledger.connection import async_redis_client
from pipeline.ledger.keys import KEY_PREFIX, Keys
from pipeline.ledger.scripts import (
    Callback,
    ScriptContext,
    accept_callbacks_args,
    pools_of,
    script_context,
    source,
)
from pipeline.settings import Settings
from pipeline.signing import CallbackClaim

# Most callbacks one round trip records; more wait for the next.
MAX_BATCH = 256


class CallbackOutcome(Enum):
    """What a verified callback meant for its job."""

    COLLECT = "collect"  # first final callback of the current attempt: collect queued
    DUPLICATE = "duplicate"  # seen before: acknowledge, do nothing
    STALE = "stale"  # an older attempt, or the job is finished: acknowledge
    PENDING = "pending"  # the provider says the task is still running: acknowledge
    UNKNOWN = "unknown"  # no such job: answer 404


@dataclass
class _Pending:
    callback: Callback
    answer: asyncio.Future[CallbackOutcome] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class CallbackRecorder:
    """Records verified callbacks in batches. Not thread-safe: use it from one event
    loop at a time (the receiver's)."""

    def __init__(
        self,
        connect: Callable[[], aioredis.Redis],
        context: ScriptContext,
        *,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self._connect = connect
        self._context = context
        self._max_batch = max_batch
        self._waiting: list[_Pending] = []
        self._flusher: asyncio.Task[None] | None = None
        self._bound: tuple[asyncio.AbstractEventLoop, aioredis.Redis, AsyncScript] | None = None

    @classmethod
    def from_settings(
        cls, settings: Settings, *, clock: Callable[[], float] = time.time, prefix: str = KEY_PREFIX
    ) -> CallbackRecorder:
        """A recorder on the settings' Redis, filling freed slots up to their slot count."""
        context = script_context(
            Keys(prefix),
            pools_of(settings.accounts),
            settings.deadlines,
            clock,
            default_pool=settings.accounts.default_name,
        )
        return cls(lambda: async_redis_client(settings.redis_url), context)

    def __repr__(self) -> str:
        return "CallbackRecorder()"

    async def ping(self) -> None:
        """Raise unless Redis answers."""
        await self._client()[0].ping()

    async def record(self, claim: CallbackClaim, report: CallbackReport) -> CallbackOutcome:
        """Record one verified callback; return what it meant once the ledger has it.

        Raises whatever Redis raised (the batch it rode in was not recorded).
        """
        callback = Callback(claim.ref, claim.attempt, report.is_final, report.task_id)
        pending = _Pending(callback)
        self._waiting.append(pending)
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush())
        return await pending.answer

    async def aclose(self) -> None:
        """Finish the batch in flight and close the connections (those of another,
        finished, event loop are only dropped)."""
        if self._flusher is not None:
            await self._flusher
        bound, self._bound = self._bound, None
        if bound is not None and bound[0] is asyncio.get_running_loop():
            await bound[1].aclose()  # type: ignore[attr-defined]  # (types-redis predates it)

    def _client(self) -> tuple[aioredis.Redis, AsyncScript]:
        """The client for the running event loop. asyncio connections belong to the loop
        that opened them; a server runs one loop, test harnesses may start several."""
        loop = asyncio.get_running_loop()
        if self._bound is None or self._bound[0] is not loop:
            client = self._connect()
            self._bound = (loop, client, client.register_script(source("accept_callbacks")))
        return self._bound[1], self._bound[2]

    async def _flush(self) -> None:
        try:
            while self._waiting:
                batch = self._waiting[: self._max_batch]
                del self._waiting[: self._max_batch]
                await self._run(batch)
        finally:
            self._flusher = None

    async def _run(self, batch: list[_Pending]) -> None:
        args = accept_callbacks_args(self._context, (pending.callback for pending in batch))
        try:
            answers = await self._client()[1](keys=[], args=args)
        except Exception as error:
            for pending in batch:
                if not pending.answer.done():
                    pending.answer.set_exception(error)
            return
        for pending, answer in zip(batch, answers, strict=True):
            if not pending.answer.done():  # its request may have been cancelled
                pending.answer.set_result(CallbackOutcome(answer))
