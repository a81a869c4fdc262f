"""`fillpipe finetunes list|show|delete|create`: the account's finetunes, read and changed
through the provider's management endpoints (`pipeline.finetunes`).

Ids and details go to stdout as plain lines (or one JSON document); what is happening,
confirmations and training progress go to stderr.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import click

from fillpipe.output import EXIT_BAD_INPUT, columns, data, emit_json, progress_console, say
from fillpipe.provider_cli import (
    EXIT_FAILURE,
    PROVIDER_ERRORS,
    chosen_accounts,
    client_for,
    describe,
    load_accounts,
)
from fillpipe.training_wait import wait_for_training
from pipeline.accounts import Accounts, ProviderAccount
from pipeline.errors import InputError, ProviderRejected
from pipeline.finetunes import (
    FinetuneInfo,
    delete_finetune,
    finetune_details,
    my_finetunes,
    training_zip,
)
from pipeline.provider import ProviderClient, TaskStatus

LIST_HEADER = ("account", "id", "trigger_word", "mode", "type", "created", "comment")
NOT_FOUND_STATUS = 404


@dataclass(frozen=True)
class TrainingRequest:
    """What `finetunes create` asks the provider to train."""

    folder: Path
    mode: str
    comment: str
    trigger_word: str
    iterations: int | None
    finetune_type: str | None


def list_finetunes(environ: Mapping[str, str], *, account: str | None, as_json: bool) -> None:
    """Every finetune of the chosen accounts, one `finetune_details` per id; an account
    that fails is reported on stderr and makes the exit code 1."""
    found: list[tuple[str, FinetuneInfo]] = []
    failed: dict[str, str] = {}
    for each in chosen_accounts(load_accounts(environ), account):
        with client_for(each) as client:
            try:
                infos = [finetune_details(client, id_) for id_ in my_finetunes(client)]
            except PROVIDER_ERRORS as error:
                failed[each.name] = describe(error)
                say(f"fillpipe: account {each.name}: {failed[each.name]}")
                continue
        found.extend((each.name, info) for info in infos)
    if as_json:
        emit_json(
            {
                "finetunes": [info_json(name, info) for name, info in found],
                "errors": [{"account": name, "error": text} for name, text in failed.items()],
            }
        )
    elif found:
        for line in columns([LIST_HEADER, *(_row(name, info) for name, info in found)]):
            data(line)
    elif not failed:
        say("no finetunes on " + ("this account" if account else "any configured account"))
    if failed:
        sys.exit(EXIT_FAILURE)


def show_finetune(
    environ: Mapping[str, str], finetune_id: str, *, account: str | None, as_json: bool
) -> None:
    """One finetune's details, from `account` or the account that lists it."""
    owner, info = locate(load_accounts(environ), finetune_id, account)
    if as_json:
        emit_json(info_json(owner.name, info))
        return
    fields = info_json(owner.name, info)
    for line in columns(
        (name, "-" if value is None else str(value)) for name, value in fields.items()
    ):
        data(line)


def remove_finetune(
    environ: Mapping[str, str], finetune_id: str, *, account: str | None, yes: bool
) -> None:
    """Delete a finetune after confirmation (`yes` skips it); without a terminal to ask
    on, only with `yes`."""
    if not yes and not sys.stdin.isatty():
        say(
            f"fillpipe: not deleting finetune {finetune_id}: there is no terminal to confirm "
            "on; pass --yes to delete it"
        )
        sys.exit(EXIT_BAD_INPUT)
    owner, info = locate(load_accounts(environ), finetune_id, account)
    described = f" ({info.comment})" if info.comment else ""
    question = (
        f"Delete finetune {finetune_id}{described} from account {owner.name}? It cannot be undone."
    )
    if not yes and not click.confirm(question, err=True):
        say("Nothing deleted.")
        sys.exit(EXIT_FAILURE)
    with client_for(owner) as client:
        delete_finetune(client, finetune_id)
    data(finetune_id)
    say(f"Deleted finetune {finetune_id} from account {owner.name}.")


def create_finetune(
    environ: Mapping[str, str], request: TrainingRequest, *, account: str | None, wait: bool
) -> None:
    """Check and zip the folder (nothing is sent if it has a problem), start training and
    print the new id; with `wait`, follow the training until it ends."""
    accounts = load_accounts(environ)
    owner = accounts.get(account) if account is not None else accounts.default
    archive, count = training_zip(request.folder)
    with client_for(owner) as client:
        finetune_id = client.create_finetune(
            archive,
            comment=request.comment,
            trigger_word=request.trigger_word,
            mode=request.mode,
            iterations=request.iterations,
            finetune_type=request.finetune_type,
        )
        data(finetune_id)
        say(f"Training finetune {finetune_id} on account {owner.name} from {count} images.")
        if wait:
            _follow(client, finetune_id)


def _follow(client: ProviderClient, finetune_id: str) -> None:
    result = wait_for_training(client, finetune_id, progress_console())
    if result.status is TaskStatus.READY:
        say(f"Finetune {finetune_id} is ready.")
        return
    details = f": {result.details}" if result.details else ""
    say(f"fillpipe: training of finetune {finetune_id} ended {result.status.value}{details}")
    sys.exit(EXIT_FAILURE)


def locate(
    accounts: Accounts, finetune_id: str, account: str | None
) -> tuple[ProviderAccount, FinetuneInfo]:
    """The account holding `finetune_id` and its details: `account` when given (or the
    only one), else the first account whose list has it. `InputError` when none has it."""
    if account is not None or len(accounts) == 1:
        owner = accounts.get(account) if account is not None else accounts.default
        return owner, _details_of(owner, finetune_id)
    failed: list[str] = []
    for each in accounts:
        with client_for(each) as client:
            try:
                if finetune_id in my_finetunes(client):
                    return each, finetune_details(client, finetune_id)
            except PROVIDER_ERRORS as error:
                failed.append(f"{each.name}: {describe(error)}")
                say(f"fillpipe: account {failed[-1]}")
    if failed:
        say(f"fillpipe: finetune {finetune_id} is on none of the accounts that answered")
        sys.exit(EXIT_FAILURE)
    raise InputError(
        f"no configured account lists finetune {finetune_id} "
        f"(asked: {', '.join(accounts.names)}); check the id, or name --account"
    )


def _details_of(owner: ProviderAccount, finetune_id: str) -> FinetuneInfo:
    with client_for(owner) as client:
        try:
            return finetune_details(client, finetune_id)
        except ProviderRejected as error:
            if error.status_code != NOT_FOUND_STATUS:
                raise
            raise InputError(
                f"account {owner.name} has no finetune {finetune_id} ({error.message})"
            ) from None


def info_json(account: str, info: FinetuneInfo) -> dict[str, object]:
    """A finetune as `list --json` and `show --json` give it, `created_at` in UTC."""
    return {"account": account, **info.as_json(), "created_at": _utc(info.created_at)}


def _row(account: str, info: FinetuneInfo) -> tuple[str, ...]:
    cells = (info.trigger_word, info.mode, info.type, _utc(info.created_at), info.comment)
    return (account, info.id, *(cell or "-" for cell in cells))


def _utc(moment: str | None) -> str | None:
    """An ISO 8601 time from the provider as `2026-11-24T10:02:03Z`; as given if it is
    not one with a zone."""
    if moment is None:
        return None
    try:
        parsed = datetime.fromisoformat(moment)
    except ValueError:
        return moment
    if parsed.tzinfo is None:
        return moment
    return parsed.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
