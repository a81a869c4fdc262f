"""`fillpipe watch s3|sqs`: objects landing in buckets become jobs, by trigger rules."""

from __future__ import annotations

import os

import click

from fillpipe.output import exit_on_known_errors

DEFAULT_INTERVAL_S = 2.0
DEFAULT_RECEIVERS = 4

rules_option = click.option(
    "--rules",
    "rules_file",
    envvar="FILLPIPE_RULES_FILE",
    required=True,
    type=click.Path(dir_okay=False),
    help="The trigger rules (TOML); env FILLPIPE_RULES_FILE. Check one with "
    "`fillpipe rules check FILE`.",
)
health_option = click.option(
    "--health-port",
    type=click.IntRange(1, 65535),
    default=None,
    help="Answer GET http://127.0.0.1:PORT/healthz: 200 while polls succeed, else 503.",
)


@click.group()
def watch() -> None:
    """Turn objects landing in buckets into jobs, by trigger rules (long-running).

    Each new image that a rule wants becomes a job in the rule's batch of the day
    (`<rule>-<YYYYMMDD>`, shown by `fillpipe batches`); its mask never makes a job of
    its own. Stops cleanly on Ctrl-C or SIGTERM; waits out S3, SQS and Redis outages.
    """


@watch.command("s3")
@click.argument("uris", nargs=-1, required=True, metavar="s3://BUCKET/PREFIX...")
@rules_option
@click.option(
    "--backfill",
    is_flag=True,
    help="On the first start, hand on the objects already there (default: take them as "
    "seen, and watch for new ones only).",
)
@click.option(
    "--interval-s",
    type=click.FloatRange(0.1, 3600),
    default=DEFAULT_INTERVAL_S,
    show_default=True,
    help="Seconds between listings.",
)
@health_option
def watch_s3(
    uris: tuple[str, ...],
    rules_file: str,
    backfill: bool,
    interval_s: float,
    health_port: int | None,
) -> None:
    """Poll bucket listings: for S3 servers without notifications (SeaweedFS, the
    embedded stack). The cursor lives in Redis and survives restarts."""
    from fillpipe.watchers import watch_s3 as run

    exit_on_known_errors(
        lambda: run(
            os.environ,
            uris,
            rules_file=rules_file,
            backfill=backfill,
            interval_s=interval_s,
            health_port=health_port,
        )
    )


@watch.command("sqs")
@click.argument("queue_url")
@rules_option
@click.option(
    "--receivers",
    type=click.IntRange(1, 64),
    default=DEFAULT_RECEIVERS,
    show_default=True,
    help="Concurrent long-poll receives.",
)
@health_option
def watch_sqs(queue_url: str, rules_file: str, receivers: int, health_port: int | None) -> None:
    """Long-poll an SQS queue fed by S3 (directly, through SNS, or through
    EventBridge). A message is deleted once its jobs are in the ledger. The endpoint
    and region come from boto3's configuration (AWS_ENDPOINT_URL_SQS,
    AWS_DEFAULT_REGION)."""
    from fillpipe.watchers import watch_sqs as run

    exit_on_known_errors(
        lambda: run(
            os.environ,
            queue_url,
            rules_file=rules_file,
            receivers=receivers,
            health_port=health_port,
        )
    )
