"""Verified callbacks into the ledger, many per round trip (group commit).

The receiver answers each callback only once the ledger has it, and a Redis round trip
costs far more than verifying a callback. So callbacks that arrive while one batch is
in flight wait for the next, and each batch is one run of `ACCEPT_CALLBACKS`: it records
every callback, queues the collect message of each first final one, gives their
provider slots back (handing them to staged jobs) and, when any slot came free, queues
one dispatch message. Nothing waits on a timer: a callback arriving when no batch is in
flight goes at once, so a lone callback costs one round trip and a burst costs one round
trip per batch.

Messages are built outside the core (`Outbox`, from the Celery app in the composition
root), so this module knows nothing of the broker's format.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.commands.core import AsyncScript

from pipeline.callbacks import CallbackReport
from pipeline.ledger import (
    ACCEPT_CALLBACKS,
    CallbackEntry,
    FollowUps,
    accept_callbacks_call,
    redis_client_options,
)
from pipeline.models import JobRef
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


class Outbox(Protocol):
    """Ready broker messages for the follow-up work of callbacks."""

    @property
    def collect_queue(self) -> str:
        """The Redis list collect messages go to."""

    @property
    def dispatch_queue(self) -> str:
        """The Redis list the dispatch message goes to."""

    def collect(self, ref: JobRef, attempt: int) -> str:
        """The message that makes a worker collect `attempt` of the job."""

    def dispatch(self) -> str:
        """The message that makes a worker fill the free provider slots."""


@dataclass
class _Pending:
    entry: CallbackEntry
    answer: asyncio.Future[CallbackOutcome] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class CallbackRecorder:
    """Records verified callbacks in batches. Not thread-safe: use it from one event
    loop at a time (the receiver's)."""

    def __init__(
        self,
        connect: Callable[[], aioredis.Redis],
        outbox: Outbox,
        *,
        clock: Callable[[], float] = time.time,
        max_batch: int = MAX_BATCH,
        handoff_late_s: float | None = None,
    ) -> None:
        self._connect = connect
        self._outbox = outbox
        self._clock = clock
        self._handoff_late_s = handoff_late_s
        self._max_batch = max_batch
        self._waiting: list[_Pending] = []
        self._flusher: asyncio.Task[None] | None = None
        self._bound: tuple[asyncio.AbstractEventLoop, aioredis.Redis, AsyncScript] | None = None
        self.round_trips = 0

    @classmethod
    def from_url(
        cls,
        url: str,
        outbox: Outbox,
        *,
        clock: Callable[[], float] = time.time,
        handoff_late_s: float | None = None,
    ) -> CallbackRecorder:
        """A recorder on `url` whose commands ride out a Redis restart, as the ledger's do.

        With `handoff_late_s` (the dispatch deadline), a slot a callback frees goes at
        once to the oldest staged job, in the same script (see `ACCEPT_CALLBACKS`).
        """
        return cls(
            lambda: async_redis_client(url), outbox, clock=clock, handoff_late_s=handoff_late_s
        )

    def __repr__(self) -> str:
        return "CallbackRecorder()"

    async def ping(self) -> None:
        """Raise unless Redis answers."""
        await self._client()[0].ping()

    async def record(self, claim: CallbackClaim, report: CallbackReport) -> CallbackOutcome:
        """Record one verified callback; return what it meant once the ledger has it.

        Raises whatever Redis raised (the batch it rode in was not recorded).
        """
        final = report.is_final
        message = self._outbox.collect(claim.ref, claim.attempt) if final else ""
        pending = _Pending(CallbackEntry(claim.ref, claim.attempt, final, report.task_id, message))
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
            self._bound = (loop, client, client.register_script(ACCEPT_CALLBACKS))
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
        # Only a final callback can free a slot: no dispatch message for other batches.
        may_free = any(pending.entry.final for pending in batch)
        follow_ups = FollowUps(
            collect_queue=self._outbox.collect_queue,
            dispatch_queue=self._outbox.dispatch_queue,
            dispatch_message=self._outbox.dispatch() if may_free else "",
            handoff_late_s=self._handoff_late_s,
        )
        keys, args = accept_callbacks_call(
            (pending.entry for pending in batch), now=self._clock(), follow_ups=follow_ups
        )
        self.round_trips += 1
        try:
            answers = await self._client()[1](keys=keys, args=args)
        except Exception as error:
            for pending in batch:
                if not pending.answer.done():
                    pending.answer.set_exception(error)
            return
        for pending, answer in zip(batch, answers, strict=True):
            if not pending.answer.done():  # its request may have been cancelled
                pending.answer.set_result(CallbackOutcome(answer))


def async_redis_client(url: str) -> aioredis.Redis:
    """The asyncio twin of `pipeline.ledger.redis_client` (same retries, same timeouts)."""
    return aioredis.Redis.from_url(url, **redis_client_options(Retry))
