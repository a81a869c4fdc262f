"""The long-running services, wired from settings: worker, beat, receiver, dashboard,
emulator.

These are the entry points of `fillpipe worker|beat|receiver|dashboard|emulator`, which the
embedded stack, the tests and docker-compose all run.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path

import uvicorn
from starlette.applications import Starlette

from fillpipe.logs import configure_logging, log_format
from pipeline.balances import read_balances
from pipeline.errors import ConfigError
from pipeline.ledger import INTERACTIVE_RETRIES, Ledger
from pipeline.metrics import LedgerCollector
from pipeline.polling import mode_line
from pipeline.recorder import CallbackRecorder
from pipeline.settings import Settings
from pipeline.signing import CallbackSigner
from pipeline.storage import Storage, make_s3_client
from pipeline.thumbnails import Thumbnails
from pipeline.triggers.intake import TriggerIntake
from pipeline.triggers.rules import load_rules
from webhook_receiver.app import create_app as create_receiver_app
from webhook_receiver.dashboard import DashboardSources
from webhook_receiver.dashboard import create_app as create_dashboard_app
from webhook_receiver.events import EventHandlers
from workers.app import create_celery_app

# A worker's task threads by default: for each provider slot, a submit waiting for it
# with its request ready, one posting, and a collect.
THREADS_PER_SLOT = 3
# The dashboard reads balances in the background; a slow provider must not hold it up.
BALANCE_TIMEOUT_S = 5.0
# A preview is worth a short wait only: S3 out of reach shows as a missing picture soon.
PREVIEW_S3_TIMEOUT_S = 5.0


def run_worker(
    environ: Mapping[str, str], *, queues: str, concurrency: int | None, loglevel: str
) -> None:
    """A Celery worker consuming `queues` with `concurrency` threads (default:
    `THREADS_PER_SLOT` per provider slot of every account), and relaying the ledger's outbox."""
    settings = Settings.from_environ(environ)
    configure_logging(loglevel, settings=settings, environ=environ)
    threads = concurrency or THREADS_PER_SLOT * settings.accounts.total_slots
    app = create_celery_app(settings)
    app.worker_main(
        [
            *_celery_banner_off(environ),
            "worker",
            f"--queues={queues}",
            "--pool=threads",
            f"--concurrency={threads}",
            f"--loglevel={loglevel}",
            "--without-gossip",
            "--without-mingle",
        ]
    )


def run_beat(environ: Mapping[str, str], *, schedule: Path, loglevel: str) -> None:
    """Celery beat with the reconcile schedule; run exactly one per deployment."""
    settings = Settings.from_environ(environ)
    configure_logging(loglevel, settings=settings, environ=environ)
    app = create_celery_app(settings)
    app.start(
        [*_celery_banner_off(environ), "beat", f"--schedule={schedule}", f"--loglevel={loglevel}"]
    )


def _celery_banner_off(environ: Mapping[str, str]) -> list[str]:
    """Celery prints its start-up banner as plain text: left out of JSON logs."""
    return ["--quiet"] if log_format(environ, sys.stderr) == "json" else []


def build_receiver_app(settings: Settings) -> Starlette:
    """The receiver wired to the ledger: each recorded callback queues its collect and
    fills the slot it frees, in the same script. With `FILLPIPE_RULES_FILE` it also
    takes storage events, which need `FILLPIPE_EVENTS_TOKEN`. Its `/metrics` includes
    the ledger's gauges."""
    return create_receiver_app(
        signer=CallbackSigner(settings.signing_keys, max_age_s=settings.callback_token_max_age_s),
        recorder=CallbackRecorder.from_settings(settings),
        require_signature=settings.require_signature,
        events=_event_handlers(settings),
        start_line=mode_line(settings),
        ledger_metrics=LedgerCollector.from_settings(settings),
    )


def _event_handlers(settings: Settings) -> EventHandlers | None:
    if settings.rules_file is None:
        return None
    if not settings.events_token:
        raise ConfigError(
            "FILLPIPE_EVENTS_TOKEN is not set: the receiver takes storage events "
            "(FILLPIPE_RULES_FILE is set) only with a token (a long random string; "
            "MinIO sends it as its auth_token, EventBridge as x-api-key)"
        )
    rules = load_rules(settings.rules_file)
    return EventHandlers(TriggerIntake.from_settings(settings, rules), settings.events_token)


def run_receiver(environ: Mapping[str, str], *, host: str, port: int) -> None:
    """The webhook receiver under uvicorn. No access log: callback URLs carry tokens.
    uvicorn's own lines go through fillpipe's handler (`log_config=None`)."""
    settings = Settings.from_environ(environ)
    configure_logging(settings=settings, environ=environ)
    app = build_receiver_app(settings)
    uvicorn.run(app, host=host, port=port, access_log=False, log_level="info", log_config=None)


def build_dashboard_app(settings: Settings) -> Starlette:
    """The dashboard over the ledger and S3, reading each account's balance now and
    then; `ConfigError` without `FILLPIPE_DASHBOARD_TOKEN`."""
    if settings.dashboard_token is None:
        raise ConfigError(
            "FILLPIPE_DASHBOARD_TOKEN is not set: every dashboard page needs it (make one: "
            "export FILLPIPE_DASHBOARD_TOKEN=$(openssl rand -hex 24); `fillpipe up` writes "
            "one into stack.env)"
        )
    sources = DashboardSources(
        ledger=Ledger.from_settings(settings, redis_retries=INTERACTIVE_RETRIES),
        thumbnails=Thumbnails(
            Storage(make_s3_client(settings, timeout_s=PREVIEW_S3_TIMEOUT_S, attempts=2))
        ),
        flavors={account.name: account.flavor for account in settings.accounts},
        read_balances=lambda: read_balances(settings.accounts, timeout_s=BALANCE_TIMEOUT_S),
    )
    return create_dashboard_app(sources, token=settings.dashboard_token)


def run_dashboard(environ: Mapping[str, str], *, host: str, port: int) -> None:
    """The dashboard under uvicorn. No access log: the sign-in URL carries the token."""
    settings = Settings.from_environ(environ)
    configure_logging(settings=settings, environ=environ)
    app = build_dashboard_app(settings)
    uvicorn.run(app, host=host, port=port, access_log=False, log_level="info", log_config=None)


def run_emulator(environ: Mapping[str, str], *, host: str, port: int) -> None:
    """The provider emulator under uvicorn, configured by FILLPIPE_EMULATOR_*."""
    from emulator.app import create_app
    from emulator.config import EmulatorConfig

    configure_logging(environ=environ)
    uvicorn.run(
        create_app(EmulatorConfig.from_environ(environ)),
        host=host,
        port=port,
        access_log=False,
        log_level="info",
        log_config=None,
    )
