"""The ledger's Lua scripts, loaded once, each behind a typed wrapper.

Each script is `lua/common.lua` (named arguments, key schema, outbox, dispatcher)
followed by its own file, and takes one argument: a JSON object of named arguments.
`ScriptContext` adds what every script gets (`prefix`, `now`, `day`, `pools`,
`default_pool`, `dispatch_late_s`); the wrappers add each script's own, so no caller deals in
positions. Every state change is one script run: atomic, and checked against the job's
current state (and attempt) first, so racing callbacks, polls and redelivered tasks
change a job at most once.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from pipeline.accounts import Accounts
from pipeline.ledger.keys import Keys
from pipeline.models import JobRef, JobSpec
from pipeline.settings import Deadlines
from pipeline.states import TERMINAL_STATES, JobState

LUA_DIR = Path(__file__).with_name("lua")
# How long the mark of an attempt's first final callback is kept (duplicates after
# this are still stale: the job has moved on by then).
CALLBACK_MARK_TTL_S = 7 * 24 * 3600
FieldValue = str | int | float | None
# The batch counters of the terminal states: a batch has finished when they add up to
# its total (`transition` notifies then).
FINISHED_COUNTERS = sorted(f"n:{state.value}" for state in TERMINAL_STATES)


@functools.cache
def source(name: str) -> str:
    """The full text of script `name`: common.lua, then `name`.lua."""
    return (LUA_DIR / "common.lua").read_text() + "\n" + (LUA_DIR / f"{name}.lua").read_text()


@dataclass(frozen=True)
class PoolLimits:
    """One account's slot pool as the dispatcher keeps it: how many slots, and the
    credits its recorded spend may reach in a UTC day (None: no cap)."""

    slots: int
    daily_budget_credits: float | None = None


def pools_of(accounts: Accounts) -> dict[str, PoolLimits]:
    """Each configured account's pool limits, by account name."""
    return {
        account.name: PoolLimits(account.slots, account.daily_budget_credits)
        for account in accounts
    }


@dataclass(frozen=True)
class ScriptContext:
    """What every script is told besides its own arguments."""

    keys: Keys
    pools: Mapping[str, PoolLimits]
    default_pool: str
    dispatch_late_s: float
    clock: Callable[[], float]

    def args(self, **named: Any) -> list[str]:
        """The scripts' one argument: the named arguments as a JSON object."""
        now = self.clock()
        common = {
            "prefix": self.keys.prefix,
            "now": now,
            "day": utc_day(now),
            "pools": {
                name: {"slots": limits.slots, "budget": limits.daily_budget_credits}
                for name, limits in self.pools.items()
            },
            "default_pool": self.default_pool,
            "dispatch_late_s": self.dispatch_late_s,
        }
        return [json.dumps({**common, **named}, ensure_ascii=False)]


def script_context(
    keys: Keys,
    pools: Mapping[str, PoolLimits],
    deadlines: Deadlines,
    clock: Callable[[], float],
    *,
    default_pool: str | None = None,
) -> ScriptContext:
    """The context of the ledger's scripts for these account pools (the first is the
    default unless `default_pool` says otherwise)."""
    default = default_pool if default_pool is not None else next(iter(pools))
    return ScriptContext(keys, dict(pools), default, deadlines.dispatch_late_s, clock)


def utc_day(epoch_s: float) -> str:
    """The UTC date of an instant as YYYYMMDD: the key of an account's spend that day."""
    return time.strftime("%Y%m%d", time.gmtime(epoch_s))


@dataclass(frozen=True)
class Transition:
    """The outcome of a transition: whether it applied, from which state, the job's
    attempt after it, and whether the job gave back a provider slot."""

    applied: bool
    previous: JobState | None
    attempt: int = 0
    released_slot: bool = False


@dataclass(frozen=True)
class PollClaim:
    """One run of `claim_polls`: the entries it claimed ("<attempt>|<job key>", each
    given a collect) and when the earliest entry left is due (None: no entry left)."""

    entries: list[str]
    next_due_at: float | None


@dataclass(frozen=True)
class Callback:
    """One verified callback to record: the attempt it names, whether the provider says
    the task ended, and the task id it names."""

    ref: JobRef
    attempt: int
    final: bool
    task_id: str | None = None


def accept_callbacks_args(context: ScriptContext, callbacks: Iterable[Callback]) -> list[str]:
    """The argument of one `accept_callbacks` run over `callbacks`."""
    return context.args(
        mark_ttl_s=CALLBACK_MARK_TTL_S,
        callbacks=[
            {
                "batch": cb.ref.batch_id,
                "job": cb.ref.job_id,
                "attempt": cb.attempt,
                "final": cb.final,
                "task_id": cb.task_id,
            }
            for cb in callbacks
        ],
    )


class Scripts:
    """Every ledger script, registered on one (synchronous) client."""

    def __init__(self, client: redis.Redis, context: ScriptContext) -> None:
        self.context = context
        self._run = {
            name: client.register_script(source(name))
            for name in (
                "transition",
                "dispatch",
                "join",
                "release_slot",
                "take_slot",
                "reserve_budget",
                "accept_callbacks",
                "add_triggered",
                "claim_polls",
                "file_notification",
                "claim_notifications",
            )
        }

    def _call(self, name: str, **named: Any) -> Any:
        return self._run[name](keys=[], args=self.context.args(**named))

    def transition(
        self,
        ref: JobRef,
        *,
        from_states: Iterable[JobState],
        to_state: JobState,
        attempt: int | None,
        new_attempt: bool = False,
        fields: Mapping[str, FieldValue] | None = None,
        cost_delta: float | None = None,
        late_at: float | None = None,
        follow_up: str | None = None,
    ) -> Transition:
        applied, previous, now_attempt, released = self._call(
            "transition",
            batch=ref.batch_id,
            job=ref.job_id,
            from_states=[state.value for state in from_states],
            to_state=to_state.value,
            attempt=attempt,
            new_attempt=new_attempt,
            fields={
                name: "" if value is None else str(value) for name, value in (fields or {}).items()
            },
            cost_delta=cost_delta,
            late_at=late_at,
            release=not to_state.holds_slot,
            follow_up=follow_up,
            finished_counters=FINISHED_COUNTERS if to_state.is_terminal else None,
        )
        return Transition(
            applied=bool(applied),
            previous=JobState(previous) if previous else None,
            attempt=int(now_attempt),
            released_slot=bool(released),
        )

    def dispatch(self, account: str | None = None) -> int:
        return int(self._call("dispatch", account=account))

    def join(self, batch_id: str, accounts: Iterable[str]) -> int:
        return int(self._call("join", batch=batch_id, accounts=sorted(set(accounts))))

    def take_slot(self, ref: JobRef, attempt: int, *, wait_late_s: float) -> str:
        return str(
            self._call(
                "take_slot",
                batch=ref.batch_id,
                job=ref.job_id,
                attempt=attempt,
                wait_late_s=wait_late_s,
            )
        )

    def release_slot(self, ref: JobRef, attempt: int) -> bool:
        return bool(self._call("release_slot", batch=ref.batch_id, job=ref.job_id, attempt=attempt))

    def reserve_budget(self, batch_id: str, credits: float) -> float | None:
        reserved = float(self._call("reserve_budget", batch=batch_id, credits=credits))
        return None if reserved < 0 else reserved

    def accept_callbacks(self, callbacks: Iterable[Callback]) -> list[str]:
        run = self._run["accept_callbacks"]
        return [
            str(answer)
            for answer in run(keys=[], args=accept_callbacks_args(self.context, callbacks))
        ]

    def claim_polls(self, *, limit: int, lease_s: float) -> PollClaim:
        entries, head = self._call("claim_polls", limit=limit, lease_s=lease_s)
        return PollClaim([str(entry) for entry in entries], float(head) if head else None)

    def file_notification(
        self, webhook_id: str, *, url: str, body: str, lease_s: float, keep_s: int
    ) -> bool:
        return bool(
            self._call(
                "file_notification",
                id=webhook_id,
                url=url,
                body=body,
                lease_s=lease_s,
                keep_s=keep_s,
            )
        )

    def claim_notifications(self, *, limit: int, lease_s: float) -> list[list[str]]:
        """The claimed deliveries, each [webhook id, url, body, attempts made]."""
        flat = [
            str(item) for item in self._call("claim_notifications", limit=limit, lease_s=lease_s)
        ]
        return [flat[at : at + 4] for at in range(0, len(flat), 4)]

    def add_triggered(
        self,
        spec: JobSpec,
        *,
        source: str,
        seen: str,
        event_id: str,
        object_id: str,
        order: str,
        seen_ttl_s: int,
        waits_for: str | None,
        late_at: float | None,
        notify: str | None = None,
    ) -> str:
        return str(
            self._call(
                "add_triggered",
                batch=spec.ref.batch_id,
                job=spec.ref.job_id,
                spec=spec.to_json(),
                account=spec.account,
                source=source,
                seen=seen,
                event_id=event_id,
                object_id=object_id,
                order=order,
                seen_ttl_s=seen_ttl_s,
                waits_for=waits_for,
                late_at=late_at,
                notify=notify,
            )
        )
