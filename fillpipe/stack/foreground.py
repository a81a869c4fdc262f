"""`fillpipe up`: the stack in the foreground until a signal, restarting what exits.

A service that exits is restarted on the same address and data, after a delay that
grows while it keeps exiting (`RestartPolicy`); one that crash-loops stops the stack.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import click

from fillpipe.logs import configure_logging
from fillpipe.output import say
from fillpipe.stack.embedded import EmbeddedStack
from fillpipe.stack.restarts import RestartPolicy
from pipeline.errors import StackError
from pipeline.polling import mode_line
from pipeline.settings import Settings, redact_url

WATCH_INTERVAL_S = 0.5
EXIT_FAILURE = 1


class _StopRequested(BaseException):
    """SIGINT or SIGTERM arrived (a BaseException, so no probe swallows it)."""


def run_foreground(state_dir: Path, environ: Mapping[str, str]) -> None:
    """Run the stack until SIGINT/SIGTERM (return) or until a service crash-loops (exit
    code 1), restarting each service that exits."""
    configure_logging(environ=environ)  # a bad FILLPIPE_LOG_FORMAT stops it here
    stack = EmbeddedStack(state_dir, environ)
    failed: str | None = None
    with _stop_signals():
        try:
            stack.start()
            configure_logging(settings=Settings.from_environ(stack.env), environ=environ)
            _write_pids_file(stack)
            stack.write_env_file()
            _print_summary(stack)
            failed = _supervise(stack)
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


def _supervise(stack: EmbeddedStack) -> str:
    """Restart each service that exits, once its policy's delay has passed; return the
    name of the first one that crash-loops."""
    policies = {name: RestartPolicy() for name in [*stack.pids, *stack.exited()]}
    restart_at: dict[str, float] = {}
    while True:
        for name in stack.exited():
            if name not in restart_at:
                delay_s = _notice_exit(stack, name, policies[name])
                if delay_s is None:
                    return name
                restart_at[name] = time.monotonic() + delay_s
        for name, due in list(restart_at.items()):
            if due <= time.monotonic():
                del restart_at[name]
                _restart(stack, name, policies[name])
        time.sleep(WATCH_INTERVAL_S)


def _notice_exit(stack: EmbeddedStack, name: str, policy: RestartPolicy) -> float | None:
    """Clean up after a service that exited and say so; the delay before its restart, or
    None when it is crash-looping."""
    ended = _how_it_ended(stack.reap(name))
    _write_pids_file(stack)
    delay_s = policy.exited()
    log = stack.log_path(name)
    if delay_s is None:
        say(
            f"fillpipe up: {_now()} {name} {ended}; it exited {policy.quick_exits_in_a_row}"
            f" times in a row, each within {policy.quick_exit_s:g} s of starting: giving up"
            f" on it and stopping the stack. Its log: {log}\n"
            f"last lines of its log:\n{stack.log_tail(name)}"
        )
    else:
        at = time.strftime("%H:%M:%S", time.localtime(time.time() + delay_s))
        say(
            f"fillpipe up: {_now()} {name} {ended}; restarting it in {delay_s:g} s"
            f" (at {at}); its log: {log}"
        )
    return delay_s


def _restart(stack: EmbeddedStack, name: str, policy: RestartPolicy) -> None:
    """Start `name` again on the same address and data; a failed start counts as an exit."""
    try:
        stack.restart(name)
    except StackError as error:
        say(f"fillpipe up: {_now()} {name} did not come back: {error.problem}")
    policy.started()
    _write_pids_file(stack)


def _how_it_ended(code: int | None) -> str:
    if code is None or code >= 0:
        return f"exited with code {code}"
    try:
        signame = signal.Signals(-code).name
    except ValueError:
        signame = f"signal {-code}"
    return f"exited with code {code} ({signame})"


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")


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
    """Service name -> pid of each running service, replaced whole (never read half-written)."""
    path = stack.state.pids_file
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(stack.pids, indent=2) + "\n")
    os.replace(partial, path)


def _print_summary(stack: EmbeddedStack) -> None:
    env, pids = stack.env, stack.pids
    rows = [
        ("redis", redact_url(env.get("FILLPIPE_REDIS_URL", "")), "valkey"),
        ("s3", env.get("FILLPIPE_S3_ENDPOINT_URL", "(AWS)"), "s3"),
        ("bucket", env.get("FILLPIPE_BUCKET", ""), ""),
        ("provider", env.get("FILLPIPE_PROVIDER_URL", "(not set)"), "emulator"),
        ("receiver", env.get("FILLPIPE_RECEIVER_URL", "(not started)"), "receiver"),
        ("dashboard", env.get("FILLPIPE_DASHBOARD_URL", "(not started)"), "dashboard"),
    ]
    if "FILLPIPE_RULES_FILE" in env:
        rows.append(("rules", env["FILLPIPE_RULES_FILE"], "watcher"))
    click.echo(f"fillpipe stack is up; state dir {stack.state.root}")
    for label, value, service in rows:
        origin = " (embedded)" if service in pids else ""
        click.echo(f"  {label:<10}{value}{origin}")
    click.echo(f"  {mode_line(Settings.from_environ(env))}")
    running = ", ".join(f"{name} (pid {pid})" for name, pid in pids.items())
    click.echo(f"  running   {running}")
    click.echo(f"  logs      {stack.state.logs}/")
    click.echo(f"In another shell:  source {shlex.quote(str(stack.state.env_file))}")
    if "FILLPIPE_DASHBOARD_URL" in env:
        click.echo(
            'then open the dashboard:  "$FILLPIPE_DASHBOARD_URL/?token=$FILLPIPE_DASHBOARD_TOKEN"'
        )
    click.echo("Press Ctrl-C to stop.")
