"""`fillpipe finetunes`: list, show, delete and create the provider accounts' finetunes.

Each command reads only the provider accounts (FILLPIPE_ACCOUNTS_FILE, or
FILLPIPE_PROVIDER_URL and FILLPIPE_PROVIDER_KEY); the work is in
`fillpipe.finetune_commands`.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from fillpipe import finetune_commands
from fillpipe.finetune_commands import TrainingRequest
from fillpipe.provider_cli import run_provider_command
from pipeline.finetunes import (
    DEFAULT_ITERATIONS,
    FINETUNE_MODES,
    FINETUNE_TYPES,
    MAX_ITERATIONS,
    MAX_TRAINING_IMAGES,
    MIN_ITERATIONS,
    MIN_TRAINING_SHORT_SIDE_PX,
)

account_option = click.option(
    "--account",
    default=None,
    metavar="NAME",
    help="The provider account (see FILLPIPE_ACCOUNTS_FILE); default: every account for "
    "list, the account that has the finetune for show and delete, the default for create.",
)
json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON document on stdout instead of lines."
)


@click.group()
def finetunes() -> None:
    """The provider accounts' finetunes: list, show, delete, and create one from a folder."""


@finetunes.command("list")
@account_option
@json_option
def list_(account: str | None, as_json: bool) -> None:
    """List the finetunes of every account (or of --account).

    One line per finetune on stdout, after a header: account, id, trigger word, mode,
    type, created (UTC) and comment. An account whose key is refused or that cannot be
    reached is reported on stderr, and the exit code is then 1.
    """
    run_provider_command(
        lambda: finetune_commands.list_finetunes(os.environ, account=account, as_json=as_json)
    )


@finetunes.command()
@click.argument("finetune_id", metavar="ID")
@account_option
@json_option
def show(finetune_id: str, account: str | None, as_json: bool) -> None:
    """Show a finetune's details: account, id, comment, trigger word, mode, type,
    iterations, status and creation time, one `field value` line each."""
    run_provider_command(
        lambda: finetune_commands.show_finetune(
            os.environ, finetune_id, account=account, as_json=as_json
        )
    )


@finetunes.command()
@click.argument("finetune_id", metavar="ID")
@account_option
@click.option("--yes", is_flag=True, help="Delete without asking (required without a terminal).")
def delete(finetune_id: str, account: str | None, yes: bool) -> None:
    """Delete a finetune, after asking for confirmation. It cannot be undone.

    Without a terminal to ask on (stdin is a pipe or a file), it deletes nothing unless
    --yes is given (exit code 2). Prints the deleted id on stdout.
    """
    run_provider_command(
        lambda: finetune_commands.remove_finetune(os.environ, finetune_id, account=account, yes=yes)
    )


@finetunes.command(
    help=f"""Train a finetune from the images in DIR and print its id.

    DIR holds 1 to {MAX_TRAINING_IMAGES} images (.jpg, .jpeg, .png, .webp) directly in
    it, each at most 50 MB and at least {MIN_TRAINING_SHORT_SIDE_PX} px on its short side;
    a caption file NAME.txt beside NAME.png goes with its image. Every problem is listed
    with its file and how to fix it before anything is sent (exit code 2).

    With --wait, training progress is shown on stderr until it ends: exit code 0 when
    the finetune is ready, 1 when training failed. Some providers no longer offer
    finetune creation (exit code 1): create it in their dashboard instead.
    """
)
@click.argument("folder", metavar="DIR", type=click.Path(path_type=Path))
@click.option("--mode", type=click.Choice(FINETUNE_MODES), required=True, help="What to learn.")
@click.option("--comment", required=True, help="A description to recognise the finetune by.")
@click.option(
    "--trigger-word",
    default="TOK",
    show_default=True,
    help="The word that names the subject in prompts.",
)
@click.option(
    "--iterations",
    type=click.IntRange(MIN_ITERATIONS, MAX_ITERATIONS),
    default=None,
    help=f"Training steps ({MIN_ITERATIONS}-{MAX_ITERATIONS}; the provider's default: "
    f"{DEFAULT_ITERATIONS}).",
)
@click.option(
    "--type",
    "finetune_type",
    type=click.Choice(FINETUNE_TYPES),
    default=None,
    help="A full finetune or a LoRA (the provider's default: full).",
)
@account_option
@click.option("--wait", is_flag=True, help="Follow the training until it ends.")
def create(
    folder: Path,
    mode: str,
    comment: str,
    trigger_word: str,
    iterations: int | None,
    finetune_type: str | None,
    account: str | None,
    wait: bool,
) -> None:
    request = TrainingRequest(folder, mode, comment, trigger_word, iterations, finetune_type)
    run_provider_command(
        lambda: finetune_commands.create_finetune(os.environ, request, account=account, wait=wait)
    )
