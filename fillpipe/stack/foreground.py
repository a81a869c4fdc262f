"""`fillpipe up`: the stack in the foreground until a signal, or until a service dies."""

from __future__ import annotations

import json
import shlex
import signal
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import click

from fillpipe.stack.embedded import EmbeddedStack
from pipeline.errors import StackError
from pipeline.settings import redact_url

WATCH_INTERVAL_S = 0.5
EXIT_FAILURE = 1


class _StopRequested(BaseException):
    """SIGINT or SIGTERM arrived (a BaseException, so no probe swallows it)."""


def run_foreground(state_dir: Path, environ: Mapping[str, str]) -> None:
    """Run the stack until SIGINT/SIGTERM (return) or until a service dies (exit code 1)."""
    stack = EmbeddedStack(state_dir, environ)
    failed: str | None = None
    with _stop_signals():
        try:
            stack.start()
            _write_pids_file(stack)
            stack.write_env_file()
            _print_summary(stack)
            failed = _watch(stack)
        except _StopRequested:
            click.echo("\nStopping the stack …", err=True)
        except StackError as error:
            click.echo(f"fillpipe up: {error}", err=True)
            failed = error.service
        finally:
            _ignore_stop_signals()
            stack.stop()
            stack.state.pids_file.unlink(missing_ok=True)
    if failed is not None:
        sys.exit(EXIT_FAILURE)


def _watch(stack: EmbeddedStack) -> str:
    """Wait until a service exits; say which and where its log is."""
    while not (exited := stack.exited()):
        time.sleep(WATCH_INTERVAL_S)
    name = exited[0]
    click.echo(
        f"fillpipe up: {name} exited unexpectedly; its log: {stack.log_path(name)}", err=True
    )
    return name


@contextmanager
def _stop_signals() -> Iterator[None]:
    def request_stop(signum: int, frame: FrameType | None) -> None:
        raise _StopRequested

    previous = {
        signum: signal.signal(signum, request_stop) for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _ignore_stop_signals() -> None:
    """While stopping, a second Ctrl-C must not abandon half-stopped servers."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)


def _write_pids_file(stack: EmbeddedStack) -> None:
    stack.state.pids_file.write_text(json.dumps(stack.pids, indent=2) + "\n")


def _print_summary(stack: EmbeddedStack) -> None:
    env, pids = stack.env, stack.pids
    rows = [
        ("redis", redact_url(env.get("FILLPIPE_REDIS_URL", "")), "valkey"),
        ("s3", env.get("FILLPIPE_S3_ENDPOINT_URL", "(AWS)"), "s3"),
        ("bucket", env.get("FILLPIPE_BUCKET", ""), ""),
        ("provider", env.get("FILLPIPE_PROVIDER_URL", "(not set)"), "emulator"),
        ("receiver", env.get("FILLPIPE_PUBLIC_URL", "(not set)"), "receiver"),
    ]
    click.echo(f"fillpipe stack is up; state dir {stack.state.root}")
    for label, value, service in rows:
        origin = " (embedded)" if service in pids else ""
        click.echo(f"  {label:<9}{value}{origin}")
    running = ", ".join(f"{name} (pid {pid})" for name, pid in pids.items())
    click.echo(f"  running  {running}")
    click.echo(f"  logs     {stack.state.logs}/")
    click.echo(f"In another shell:  source {shlex.quote(str(stack.state.env_file))}")
    click.echo("Press Ctrl-C to stop.")
