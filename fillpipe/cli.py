"""The `fillpipe` command: the composition root's user interface.

Every subcommand reads its settings once from the environment (see `pipeline.settings`),
so `source DIR/stack.env` points any shell at a running embedded stack.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from fillpipe.check_cli import check
from fillpipe.credits_cli import credits
from fillpipe.finetunes_cli import finetunes
from fillpipe.output import exit_on_known_errors
from fillpipe.rules_cli import rules
from fillpipe.watch_cli import watch

DEFAULT_STATE_DIR = Path(".fillpipe")
EXIT_FAILURE = 1


state_dir_option = click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_STATE_DIR,
    show_default=True,
    help="Directory holding the embedded stack's data, logs and stack.env.",
)

json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON document on stdout instead of lines."
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="fillpipe")
def main() -> None:
    """fillpipe: bulk masked image edits through a FLUX.1 Fill [pro] finetune endpoint.

    Start with `fillpipe demo`: it runs the whole pipeline on an embedded stack
    (Valkey, an S3 server, a provider emulator, the webhook receiver, a Celery
    worker and beat) that needs no set-up.
    """


@main.command()
@state_dir_option
@click.option(
    "--rules",
    "rules_file",
    envvar="FILLPIPE_RULES_FILE",
    type=click.Path(dir_okay=False),
    default=None,
    help="Trigger rules (TOML; env FILLPIPE_RULES_FILE): also watch the buckets they "
    "name, and take storage events at the receiver's /v1/events/s3.",
)
def up(state_dir: Path, rules_file: str | None) -> None:
    """Run the embedded stack in the foreground until Ctrl-C.

    Starts only what the environment does not already provide (FILLPIPE_REDIS_URL,
    FILLPIPE_S3_ENDPOINT_URL, FILLPIPE_PROVIDER_URL) and writes DIR/stack.env, so
    another shell can `source DIR/stack.env` and run submit or status against it. A
    service that exits is restarted (with a growing delay); one that keeps failing
    right after it starts stops the stack.
    """
    from fillpipe.stack import run_foreground

    environ = dict(os.environ)
    if rules_file:
        environ["FILLPIPE_RULES_FILE"] = rules_file
    exit_on_known_errors(lambda: run_foreground(state_dir, environ))


@main.command()
@click.option(
    "--jobs",
    type=click.IntRange(1, 500),
    default=8,
    show_default=True,
    help="How many sample edits to run.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("fillpipe-demo"),
    show_default=True,
    help="Where to write the before/after contact sheet.",
)
@click.option(
    "--trigger",
    is_flag=True,
    help="Drop the samples into the bucket under a trigger rule (S3-triggered jobs) "
    "instead of submitting them as a batch.",
)
@state_dir_option
@json_option
def demo(jobs: int, out_dir: Path, trigger: bool, state_dir: Path, as_json: bool) -> None:
    """Run sample product-photo edits through the whole pipeline.

    Makes sample images, masks and a brand finetune, submits them as one batch, waits
    for every job, prints the batch, each job's state and output URI (or error), the
    results manifest and the contact sheet it writes. Uses the stack named by the
    environment (a sourced stack.env), else starts an embedded one for the run.
    Progress goes to stderr; exit code 1 if any job did not end stored.
    """
    from fillpipe.demo import run_demo

    exit_on_known_errors(
        lambda: run_demo(
            jobs=jobs,
            out_dir=out_dir,
            state_dir=state_dir,
            environ=os.environ,
            as_json=as_json,
            trigger=trigger,
        )
    )


@main.command()
@click.argument("manifest")
@click.option("--dry-run", is_flag=True, help="Validate every row and stop; submit nothing.")
@click.option("--wait", is_flag=True, help="Show progress until every job has ended.")
@click.option(
    "--budget-usd",
    type=click.FloatRange(min=0),
    help="Cap the batch's spend: no job is submitted that could take it over; "
    "the rest end as skipped_budget.",
)
@click.option(
    "--check-inputs/--no-check-inputs",
    default=None,
    help="Read every image and mask before submitting (default: for batches of up to 200).",
)
@click.option(
    "--priority",
    type=click.IntRange(1, 1000),
    default=1,
    show_default=True,
    help="The batch's share of free provider slots relative to other running batches "
    "(a batch of priority 4 gets 4 slots for every 1 of a priority-1 batch).",
)
@click.option(
    "--notify",
    "notify_url",
    metavar="URL",
    help="POST a signed batch.finished event (Standard Webhooks, FILLPIPE_NOTIFY_SECRET) "
    "to URL once every job has ended.",
)
@json_option
def submit(
    manifest: str,
    dry_run: bool,
    wait: bool,
    budget_usd: float | None,
    check_inputs: bool | None,
    priority: int,
    notify_url: str | None,
    as_json: bool,
) -> None:
    """Validate a manifest (JSON Lines or CSV, local or s3://) and submit it as one batch.

    Every row is checked first; if any is wrong, all problems are listed with file,
    line and field, nothing is uploaded or submitted, and the exit code is 2. Local
    image and mask paths are relative to the manifest's folder and are uploaded once,
    content-addressed. Prints the batch id on stdout (with --json: one document with the
    batch id, rows, whether inputs were checked, the estimate and, with --wait, the final
    counts); with --wait, exit code 1 unless every job ended stored.
    """
    from fillpipe.submit import SubmitOptions, run_submit

    options = SubmitOptions(
        dry_run, wait, budget_usd, check_inputs, priority, as_json, notify_url=notify_url
    )
    exit_on_known_errors(lambda: run_submit(manifest, os.environ, options))


@main.command()
@click.argument("batch", required=False)
@json_option
@click.option(
    "--watch", is_flag=True, help="Show live progress (throughput, ETA, cost) until the batch ends."
)
def status(batch: str | None, as_json: bool, watch: bool) -> None:
    """Show a batch's jobs by state, its cost so far and each provider account's slots.

    Without BATCH: every provider account, with its slots in use against its limit,
    whether it is paused, the credits it spent today, its balance at the provider and
    what the running batches will still spend on it.
    """
    if batch is None:
        if watch:
            raise click.UsageError("--watch follows one batch: name it (fillpipe status BATCH)")
        from fillpipe.accounts_status import show_accounts

        exit_on_known_errors(lambda: show_accounts(os.environ, as_json=as_json))
        return
    from fillpipe.batches import show_status

    exit_on_known_errors(lambda: show_status(batch, os.environ, as_json=as_json, watch=watch))


@main.command()
@click.option(
    "--limit",
    type=click.IntRange(1, 10_000),
    default=20,
    show_default=True,
    help="How many batches to list.",
)
@json_option
def batches(limit: int, as_json: bool) -> None:
    """List the most recent batches, newest first.

    For each: its id, when it was created (ISO 8601, UTC), its jobs by state, its cost
    so far and its source (the manifest's path or s3:// URI, or `demo`).
    """
    from fillpipe.batches import list_batches

    exit_on_known_errors(lambda: list_batches(os.environ, limit=limit, as_json=as_json))


@main.command()
@click.argument("batch")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "csv"]),
    default="jsonl",
    show_default=True,
    help="Output format.",
)
@click.option(
    "--flagged",
    is_flag=True,
    help="Only the jobs whose output was flagged: the provider strayed outside the mask, "
    "or a seam shows (FILLPIPE_QA_DRIFT_MAX, FILLPIPE_QA_SEAM_MAX).",
)
def results(batch: str, fmt: str, flagged: bool) -> None:
    """Print one line per job: state, output URI, cost, error, and its output's QA."""
    from fillpipe.batches import print_results

    exit_on_known_errors(
        lambda: print_results(
            batch, os.environ, fmt="csv" if fmt == "csv" else "jsonl", flagged=flagged
        )
    )


@main.command()
@click.argument("batch")
def retry(batch: str) -> None:
    """Run a batch's failed jobs again, each as a new attempt."""
    from fillpipe.batches import retry_batch

    exit_on_known_errors(lambda: retry_batch(batch, os.environ))


@main.command()
@click.argument("account", required=False)
def resume(account: str | None) -> None:
    """Let submissions start again on ACCOUNT (every account if none is named) after it
    was paused.

    fillpipe pauses an account when the provider answers 402 (no credits) or refuses
    its API key; its jobs wait, other accounts go on. Top up or fix the key, then run this.
    """
    from fillpipe.batches import resume_account

    exit_on_known_errors(lambda: resume_account(os.environ, account))


@main.command()
@click.argument("batch")
def cancel(batch: str) -> None:
    """Stop a batch: no new submissions; jobs already submitted still finish and are stored."""
    from fillpipe.batches import cancel_batch

    exit_on_known_errors(lambda: cancel_batch(batch, os.environ))


@main.command()
@click.option(
    "--queues",
    default="submit,collect,maintenance",
    show_default=True,
    help="Comma-separated Celery queues to consume.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 256),
    default=None,
    envvar="FILLPIPE_WORKER_CONCURRENCY",
    help="Task threads of this worker (env FILLPIPE_WORKER_CONCURRENCY; default: three "
    "per provider slot, for a submit waiting for each slot, one posting and a collect).",
)
@click.option("--loglevel", default="INFO", show_default=True)
def worker(queues: str, concurrency: int | None, loglevel: str) -> None:
    """Run a Celery worker that submits jobs and collects their results (in threads:
    the tasks mostly wait on S3, the provider and Redis)."""
    from fillpipe.services import run_worker

    exit_on_known_errors(
        lambda: run_worker(os.environ, queues=queues, concurrency=concurrency, loglevel=loglevel)
    )


@main.command()
@click.option(
    "--schedule",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("celerybeat-schedule"),
    show_default=True,
    help="File where beat keeps its schedule state.",
)
@click.option("--loglevel", default="INFO", show_default=True)
def beat(schedule: Path, loglevel: str) -> None:
    """Run Celery beat, which schedules the reconcile sweep (run exactly one)."""
    from fillpipe.services import run_beat

    exit_on_known_errors(lambda: run_beat(os.environ, schedule=schedule, loglevel=loglevel))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True)
def receiver(host: str, port: int) -> None:
    """Run the webhook receiver (provider callbacks, health) under uvicorn."""
    from fillpipe.services import run_receiver

    exit_on_known_errors(lambda: run_receiver(os.environ, host=host, port=port))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8070, show_default=True)
def dashboard(host: str, port: int) -> None:
    """Run the dashboard (batches, jobs with previews, retries, accounts) under uvicorn.

    Every page needs FILLPIPE_DASHBOARD_TOKEN: open http://HOST:PORT/?token=TOKEN once in
    a browser, or send `Authorization: Bearer TOKEN`. It listens on loopback unless told
    otherwise.
    """
    from fillpipe.services import run_dashboard

    exit_on_known_errors(lambda: run_dashboard(os.environ, host=host, port=port))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8090, show_default=True)
def emulator(host: str, port: int) -> None:
    """Run the local provider emulator (configured by FILLPIPE_EMULATOR_* variables)."""
    from fillpipe.services import run_emulator

    exit_on_known_errors(lambda: run_emulator(os.environ, host=host, port=port))


main.add_command(rules)
main.add_command(watch)
main.add_command(finetunes)
main.add_command(credits)
main.add_command(check)
