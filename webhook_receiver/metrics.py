"""The receiver's Prometheus metrics, served at `GET /metrics`.

    fillpipe_callbacks_total{outcome}           verified callbacks recorded, by what they
                                                meant: collect, duplicate, stale, pending,
                                                unknown
    fillpipe_callbacks_rejected_total{reason}   callbacks answered with an error: too_large
                                                (413), token, secret, signature (401),
                                                media_type (415), body (400), unavailable
                                                (503: Redis or the broker unreachable)

plus the receiver process's own CPU, memory and GC, and, when the app is given a
`LedgerCollector`, the ledger's gauges (jobs by state, each account's slots, pause,
spend), read from Redis in one round trip per scrape. Scrapes run in a worker thread,
never on the event loop that answers callbacks. Unauthenticated like `/healthz`: the
proxy in front of the receiver must not expose it (infra/DEPLOY.md).
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    generate_latest,
)
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from pipeline.errors import VerificationError
from pipeline.metrics import LedgerCollector, process_registry
from pipeline.recorder import CallbackOutcome

# The classic text format, which every Prometheus reads and `generate_latest` writes.
TEXT_FORMAT = "text/plain; version=0.0.4; charset=utf-8"
REJECT_REASONS = ("too_large", "token", "secret", "signature", "media_type", "body", "unavailable")

RECEIVER_REGISTRY = process_registry()

CALLBACKS = Counter(
    "fillpipe_callbacks",
    "Verified callbacks recorded, by what they meant for their job.",
    ["outcome"],
    registry=RECEIVER_REGISTRY,
)
CALLBACKS_REJECTED = Counter(
    "fillpipe_callbacks_rejected",
    "Callbacks answered with an error status, by reason.",
    ["reason"],
    registry=RECEIVER_REGISTRY,
)
# Every label value exported from the start (at 0), each child bound once: a callback
# costs a counter increment, not a label lookup.
_RECORDED = {outcome: CALLBACKS.labels(outcome.value) for outcome in CallbackOutcome}
_REJECTED = {reason: CALLBACKS_REJECTED.labels(reason) for reason in REJECT_REASONS}


def recorded(outcome: CallbackOutcome) -> None:
    _RECORDED[outcome].inc()


def rejected(reason: str) -> None:
    """Count a refused callback; `reason` is one of `REJECT_REASONS`."""
    _REJECTED[reason].inc()


def verification_failed(error: VerificationError) -> None:
    """Count a 401 by the check that failed: the token, the webhook secret or the body
    signature."""
    rejected(error.reason)


class MetricsEndpoint:
    """`GET /metrics`: the receiver's registry, then the ledger's gauges if any."""

    def __init__(self, ledger: LedgerCollector | None = None) -> None:
        self._ledger = ledger
        self._ledger_registry = CollectorRegistry()
        if ledger is not None:
            self._ledger_registry.register(ledger)

    def __repr__(self) -> str:
        return f"MetricsEndpoint(ledger={self._ledger!r})"

    async def scrape(self, _: Request) -> Response:
        body = await run_in_threadpool(self.exposition)
        return Response(body, media_type=TEXT_FORMAT)

    def exposition(self) -> bytes:
        """The Prometheus text of every metric (blocking: Redis is read)."""
        return generate_latest(RECEIVER_REGISTRY) + generate_latest(self._ledger_registry)

    def close(self) -> None:
        if self._ledger is not None:
            self._ledger.close()
