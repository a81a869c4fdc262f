"""Prometheus metrics of the pipeline: what workers record as jobs move, and the ledger
read at scrape time.

Worker metrics are recorded at a few seams (`submit_job`, `collect_job`, the provider's
refusals, the reconcile sweep) through the functions below, into `WORKER_REGISTRY`,
which each worker process serves on `FILLPIPE_METRICS_PORT` (`workers.metrics`). Workers
run Celery's thread pool, one process per worker, so every process has its own
exporter and no multiprocess mode is needed.

    fillpipe_submit_seconds{outcome}           a submit task, from its start (slot wait
                                               included) to the state it left the job in
    fillpipe_collect_seconds{outcome}          a collect task, likewise
    fillpipe_callback_to_stored_seconds        from the first final callback recorded to
                                               the output stored (jobs a callback named)
    fillpipe_provider_errors_total{account,status}   paid POSTs that took no task or an
                                               unknown one: 429, 402, auth, a 4xx status,
                                               connect, ambiguous (5xx, read timeout)
    fillpipe_credits_spent_total{account}      credits the provider charged for tasks taken
    fillpipe_reconcile_findings_total{kind}    what the sweep acted on

`LedgerCollector` reads jobs by state and each account's pool from Redis in one
pipelined round trip whenever it is scraped (the receiver serves it at `/metrics`).
Labels are bounded: states, outcomes, configured accounts and fixed reason words, never
job or batch ids.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, ParamSpec

import redis
from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Histogram,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pipeline.errors import (
    AmbiguousSubmit,
    KeyRejected,
    NotReadyYet,
    OutOfCredits,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
    RetryableError,
)
from pipeline.ledger.keys import KEY_PREFIX, Keys
from pipeline.ledger.scripts import CALLBACK_MARK_TTL_S, PoolLimits, pools_of, utc_day
from pipeline.models import JobRef
from pipeline.settings import Settings
from pipeline.states import JobState

P = ParamSpec("P")

# A submit may wait up to 10 minutes for a slot; a collect downloads and stores.
SUBMIT_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
COLLECT_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
RECONCILE_KINDS = ("polled", "requeued", "ambiguous", "masks_settled", "dispatched")
# How many of the newest batches the jobs-by-state gauge sums (bounds a scrape's cost).
RECENT_BATCHES = 200
# What a task that returned no state did: its job had moved on (not this attempt).
MOVED_ON = "moved_on"
# A scrape's Redis connect and read timeouts.
SCRAPE_TIMEOUT_S = 2.0


def process_registry() -> CollectorRegistry:
    """A registry of its own for one kind of process, with the process's CPU, memory,
    platform and GC collectors already in it."""
    registry = CollectorRegistry(auto_describe=True)
    for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
        registry.register(collector)
    return registry


WORKER_REGISTRY = process_registry()

SUBMIT_SECONDS = Histogram(
    "fillpipe_submit_seconds",
    "Submit tasks, start (slot wait included) to the state they left the job in.",
    ["outcome"],
    buckets=SUBMIT_BUCKETS_S,
    registry=WORKER_REGISTRY,
)
COLLECT_SECONDS = Histogram(
    "fillpipe_collect_seconds",
    "Collect tasks, start to the state they left the job in.",
    ["outcome"],
    buckets=COLLECT_BUCKETS_S,
    registry=WORKER_REGISTRY,
)
CALLBACK_TO_STORED_SECONDS = Histogram(
    "fillpipe_callback_to_stored_seconds",
    "From a job's first final callback recorded by the receiver to its output stored.",
    buckets=COLLECT_BUCKETS_S,
    registry=WORKER_REGISTRY,
)
PROVIDER_ERRORS = Counter(
    "fillpipe_provider_errors",
    "Paid POSTs the provider refused, or whose outcome is unknown, by account and status.",
    ["account", "status"],
    registry=WORKER_REGISTRY,
)
CREDITS_SPENT = Counter(
    "fillpipe_credits_spent",
    "Credits the provider charged for the tasks it took, by account.",
    ["account"],
    registry=WORKER_REGISTRY,
)
RECONCILE_FINDINGS = Counter(
    "fillpipe_reconcile_findings",
    "Jobs the reconcile sweep acted on, by what it did.",
    ["kind"],
    registry=WORKER_REGISTRY,
)
for _kind in RECONCILE_KINDS:
    RECONCILE_FINDINGS.labels(_kind)


# -- recording ------------------------------------------------------------------------


def timed(
    histogram: Histogram,
) -> Callable[[Callable[P, JobState | None]], Callable[P, JobState | None]]:
    """Time each call of a task function into `histogram`, labelled with the state it
    returned (`moved_on` for None), or with what it raised (`not_ready`, `retry`,
    `error`)."""

    def decorate(task: Callable[P, JobState | None]) -> Callable[P, JobState | None]:
        @functools.wraps(task)
        def timed_task(*args: P.args, **kwargs: P.kwargs) -> JobState | None:
            started = time.perf_counter()
            outcome = "error"
            try:
                state = task(*args, **kwargs)
                outcome = MOVED_ON if state is None else state.value
                return state
            except NotReadyYet:
                outcome = "not_ready"
                raise
            except RetryableError:
                outcome = "retry"
                raise
            finally:
                histogram.labels(outcome).observe(time.perf_counter() - started)

        return timed_task

    return decorate


def provider_error(account: str, error: Exception) -> None:
    """Count a paid POST the provider refused or left ambiguous."""
    PROVIDER_ERRORS.labels(account, provider_status(error)).inc()


def provider_status(error: Exception) -> str:
    """The bounded `status` label of a submit error."""
    if isinstance(error, RateLimited):
        return "429"
    if isinstance(error, OutOfCredits):
        return "402"
    if isinstance(error, KeyRejected):
        return "auth"  # 401 or 403
    if isinstance(error, ProviderRejected) and 400 <= error.status_code < 500:
        return str(error.status_code)
    if isinstance(error, ProviderUnavailable):
        return "connect"
    if isinstance(error, AmbiguousSubmit):
        return "ambiguous"  # 5xx, a read timeout, an answer without a task
    return "other"


def credits_spent(account: str, credits: float) -> None:
    """Count the credits a task the provider took cost."""
    if credits > 0:
        CREDITS_SPENT.labels(account).inc(credits)


def reconcile_findings(counts: Mapping[str, int]) -> None:
    """Count what one sweep acted on, by kind (`RECONCILE_KINDS`)."""
    for kind, count in counts.items():
        if count:
            RECONCILE_FINDINGS.labels(kind).inc(count)


def callback_mark(keys: Keys, ref: JobRef, attempt: int) -> str:
    """The key the first final callback of an attempt sets (`accept_callbacks.lua`)."""
    return f"{keys.prefix}callback:{ref.batch_id}:{ref.job_id}:{attempt}"


def stored(client: redis.Redis, keys: Keys, ref: JobRef, attempt: int) -> None:
    """Observe callback-to-stored for an attempt just stored. The receiver sets the
    attempt's callback mark with a TTL of `CALLBACK_MARK_TTL_S`, so the TTL left says how
    long ago the callback was recorded, on Redis's clock: no clock skew between hosts.
    Jobs no callback named (polled ones) have no mark and are not observed."""
    left_ms = client.pttl(callback_mark(keys, ref, attempt))
    if left_ms >= 0:
        CALLBACK_TO_STORED_SECONDS.observe(max(0.0, CALLBACK_MARK_TTL_S - left_ms / 1000))


# -- the ledger at scrape time --------------------------------------------------------

# Reads `total` and the per-state counters of the newest batches in the script, so the
# whole scrape is one round trip. ARGV: batches key, batch key prefix, limit, states...
_BATCH_COUNTS_LUA = """
local ids = redis.call('ZREVRANGE', ARGV[1], 0, tonumber(ARGV[3]) - 1)
local fields = {'total'}
for i = 4, #ARGV do fields[#fields + 1] = 'n:' .. ARGV[i] end
local rows = {}
for i, id in ipairs(ids) do rows[i] = redis.call('HMGET', ARGV[2] .. id, unpack(fields)) end
return rows
"""
_STATES = tuple(JobState)
_POOL_READS = 6  # commands per account in `_read`


class LedgerCollector(Collector):
    """Gauges of the ledger, read when scraped: jobs by state over the running batches
    among the newest `recent_batches`, and each account's slots, pause, cool-down, spend
    of the day, jobs waiting for a slot and batches with jobs to dispatch.
    `fillpipe_ledger_up` is 0 (and nothing else is reported) when Redis does not answer."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        pools: Mapping[str, PoolLimits],
        *,
        recent_batches: int = RECENT_BATCHES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = client
        self._keys = keys
        self._pools = dict(pools)
        self._recent = recent_batches
        self._clock = clock

    @classmethod
    def from_settings(cls, settings: Settings) -> LedgerCollector:
        """A collector on the settings' Redis, with a client of its own that fails fast
        (no retries, short timeouts): a scrape must not wait out a Redis restart."""
        client = redis.Redis.from_url(
            settings.redis_url,
            decode_responses=True,
            socket_connect_timeout=SCRAPE_TIMEOUT_S,
            socket_timeout=SCRAPE_TIMEOUT_S,
        )
        return cls(client, Keys(KEY_PREFIX), pools_of(settings.accounts))

    def __repr__(self) -> str:
        return f"LedgerCollector(accounts={sorted(self._pools)})"

    def close(self) -> None:
        self._redis.close()

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("fillpipe_ledger_up", "1 when the ledger's Redis answered.")
        try:
            answers = self._read()
        except redis.RedisError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from _job_gauges(answers[0], self._recent)
        yield from self._pool_gauges(answers[1:])

    def _read(self) -> list[Any]:
        """Everything, in one pipelined round trip."""
        pipe = self._redis.pipeline(transaction=False)
        batch_prefix = self._keys.batch("")
        pipe.eval(_BATCH_COUNTS_LUA, 0, self._keys.batches, batch_prefix, self._recent, *_STATES)
        day = utc_day(self._clock())
        for name in self._pools:
            pool = self._keys.pool(name)
            pipe.hlen(pool.leases)
            pipe.exists(pool.paused)
            pipe.pttl(pool.cooldown)
            pipe.hget(pool.spend, day)
            pipe.llen(pool.waiting)
            pipe.zcard(pool.ready)
        return pipe.execute()

    def _pool_gauges(self, answers: list[Any]) -> Iterator[Metric]:
        families = {
            name: GaugeMetricFamily(f"fillpipe_{name}", text, labels=["account"])
            for name, text in _POOL_GAUGES.items()
        }
        for index, (account, limits) in enumerate(self._pools.items()):
            in_use, paused, cooldown_ms, spent, waiting, ready = answers[
                index * _POOL_READS : (index + 1) * _POOL_READS
            ]
            values = {
                "account_slots": limits.slots,
                "account_slots_in_use": in_use,
                "account_paused": 1 if paused else 0,
                "account_cooldown_seconds": max(0.0, cooldown_ms / 1000),
                "account_spent_today_credits": float(spent or 0),
                "jobs_waiting": waiting,
                "account_ready_batches": ready,
            }
            for name, value in values.items():
                families[name].add_metric([account], float(value))
        yield from families.values()


_POOL_GAUGES = {
    "account_slots": "Provider slots the account allows.",
    "account_slots_in_use": "Provider slots in use (leases in the ledger).",
    "account_paused": "1 while the account is paused (402, refused key) until resumed.",
    "account_cooldown_seconds": "Seconds left of the account's cool-down (429, trouble).",
    "account_spent_today_credits": "Credits recorded as spent on the account today (UTC).",
    "jobs_waiting": "Dispatched jobs, request ready, waiting for one of the account's slots.",
    "account_ready_batches": "Batches with queued jobs to dispatch on the account.",
}


def _job_gauges(rows: Iterable[list[str | None]], recent: int) -> Iterator[Metric]:
    """Jobs by state, summed over the batches not yet finished, and how many those are."""
    counts = dict.fromkeys(_STATES, 0)
    running = 0
    for row in rows:
        total, by_state = int(row[0] or 0), [int(value or 0) for value in row[1:]]
        finished = sum(n for state, n in zip(_STATES, by_state, strict=True) if state.is_terminal)
        if finished >= total:
            continue
        running += 1
        for state, n in zip(_STATES, by_state, strict=True):
            counts[state] += n
    jobs = GaugeMetricFamily(
        "fillpipe_jobs",
        f"Jobs by state, over the running batches among the newest {recent}.",
        labels=["state"],
    )
    for state, n in counts.items():
        jobs.add_metric([state.value], n)
    yield jobs
    yield GaugeMetricFamily(
        "fillpipe_batches_running",
        f"Batches not yet finished, among the newest {recent}.",
        value=running,
    )
