"""`fillpipe watch s3|sqs`: the trigger intake as a long-running service.

The watcher runs its polls in threads until SIGINT or SIGTERM, then finishes the poll
under way (a message handed on is deleted, a listing recorded) and exits 0. Outages of
S3, SQS or Redis are waited out (`pipeline.triggers.watching`). With a health port it
answers `GET /healthz`: 200 while a poll succeeded recently, else 503, with figures.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType

from fillpipe.logs import configure_logging
from pipeline.errors import InputError
from pipeline.ledger import Ledger
from pipeline.routing import AccountRouter
from pipeline.settings import Settings
from pipeline.storage import S3Uri, Storage
from pipeline.triggers.intake import TriggerIntake, check_notify
from pipeline.triggers.listing import ListingPoller
from pipeline.triggers.rules import RuleSet, load_rules
from pipeline.triggers.sqs import WAIT_TIME_S, SqsWatcher, sqs_client
from pipeline.triggers.watching import Health, paced, run_until_stopped

log = logging.getLogger(__name__)

Poll = Callable[[], int]
# A watcher is unhealthy when no poll has succeeded for three of its periods (a long
# poll's wait, or the pause between listings) and half a minute.
MISSED_POLLS = 3
HEALTH_GRACE_S = 30.0


def watch_s3(
    environ: Mapping[str, str],
    uris: Sequence[str],
    *,
    rules_file: str,
    backfill: bool,
    interval_s: float,
    health_port: int | None,
) -> None:
    """Poll the listings of `uris` (s3://BUCKET/PREFIX) every `interval_s`."""
    settings, rules = _settings_and_rules(environ, rules_file)
    configure_logging(settings=settings, environ=environ)
    storage = Storage.from_settings(settings)
    ledger = Ledger.from_settings(settings)
    intake = TriggerIntake(
        rules,
        ledger=ledger,
        storage=storage,
        mask_wait_s=settings.deadlines.mask_wait_s,
        router=AccountRouter.from_settings(settings),
    )
    pollers = [
        ListingPoller(
            intake,
            storage,
            ledger.triggers.listing(uri.bucket, uri.key),
            bucket=uri.bucket,
            prefix=uri.key,
            backfill=backfill,
        )
        for uri in map(parse_watched, uris)
    ]
    for poller in pollers:
        log.info(
            "watching s3://%s/%s by listing every %g s", poller.bucket, poller.prefix, interval_s
        )
    try:
        _run("watch s3", [poller.poll for poller in pollers], interval_s, health_port)
    finally:
        ledger.close()


def watch_sqs(
    environ: Mapping[str, str],
    queue_url: str,
    *,
    rules_file: str,
    receivers: int,
    health_port: int | None,
) -> None:
    """Long-poll `queue_url` with `receivers` concurrent receives."""
    settings, rules = _settings_and_rules(environ, rules_file)
    configure_logging(settings=settings, environ=environ)
    intake = TriggerIntake.from_settings(settings, rules)
    watcher = SqsWatcher(intake, queue_url, sqs_client())
    log.info("watching %s with %d receivers", queue_url, receivers)
    try:
        _run("watch sqs", [watcher.poll] * receivers, 0.0, health_port)
    finally:
        intake.close()


def parse_watched(uri: str) -> S3Uri:
    """`s3://BUCKET/PREFIX` (the prefix may be empty: `s3://BUCKET` or `s3://BUCKET/`)."""
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    if not uri.startswith("s3://") or not bucket:
        raise InputError(f"{uri!r} is not s3://BUCKET/PREFIX")
    return S3Uri(bucket, prefix)


def _settings_and_rules(environ: Mapping[str, str], rules_file: str) -> tuple[Settings, RuleSet]:
    settings, rules = Settings.from_environ(environ), load_rules(rules_file)
    check_notify(rules, settings)  # a rule's notify needs the secret
    return settings, rules


def _run(name: str, polls: list[Poll], interval_s: float, health_port: int | None) -> None:
    stopping = threading.Event()
    health = Health()
    threads = [
        threading.Thread(
            target=run_until_stopped,
            args=(
                name,
                poll if interval_s <= 0 else paced(poll, interval_s, stopping),
                stopping,
                health,
            ),
            name=f"{name}-{index}",
        )
        for index, poll in enumerate(polls)
    ]
    stale_after_s = MISSED_POLLS * max(interval_s, WAIT_TIME_S) + HEALTH_GRACE_S
    with _stop_on_signals(stopping), _health_server(health_port, health, stale_after_s):
        for thread in threads:
            thread.start()
        while not stopping.wait(1.0):
            pass
        log.info("%s: stopping after the poll under way", name)
        for thread in threads:
            thread.join()


@contextmanager
def _stop_on_signals(stopping: threading.Event) -> Iterator[None]:
    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    previous = {signum: signal.signal(signum, stop) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextmanager
def _health_server(port: int | None, health: Health, stale_after_s: float) -> Iterator[None]:
    if port is None:
        yield
        return

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            healthy, figures = health.report(stale_after_s)
            status = 404 if self.path != "/healthz" else 200 if healthy else 503
            body = json.dumps({"status": "ok" if status == 200 else "unhealthy", **figures})
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
