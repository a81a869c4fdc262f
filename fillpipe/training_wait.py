"""Following a finetune's training on stderr: a spinner with the elapsed time, and a bar
once the provider reports `progress`, until the training ends."""

from __future__ import annotations

import time
from collections.abc import Callable

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

from pipeline.errors import RetryableError
from pipeline.provider import ProviderClient, TaskResult, TaskStatus

# Polls start often (short trainings, the emulator) and slow down for long ones.
FIRST_POLL_INTERVAL_S = 0.25
MAX_POLL_INTERVAL_S = 5.0
POLL_INTERVAL_GROWTH = 1.5

_COLUMNS = (
    SpinnerColumn(),
    TextColumn("{task.description}"),
    BarColumn(),
    TaskProgressColumn(),
    TextColumn("elapsed"),
    TimeElapsedColumn(),
)


def wait_for_training(
    client: ProviderClient,
    finetune_id: str,
    console: Console,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> TaskResult:
    """Poll the finetune's training (`get_result` on its id) until it is final; return
    that result. A provider that cannot be reached for a while is waited out."""
    polling_url = client.fallback_polling_url(finetune_id)
    interval_s = FIRST_POLL_INTERVAL_S
    with Progress(*_COLUMNS, console=console) as progress:
        bar = progress.add_task(f"Training {escape(finetune_id)}", total=None)
        while True:
            try:
                result = client.get_result(polling_url)
            except RetryableError as error:
                progress.update(bar, description=f"Training (asking again: {escape(str(error))})")
            else:
                if result.status.is_final:
                    if result.status is TaskStatus.READY:
                        progress.update(bar, total=1.0, completed=1.0)
                    return result
                description = f"Training {escape(finetune_id)}"
                if result.progress is None:
                    progress.update(bar, description=description)
                else:
                    progress.update(
                        bar, description=description, total=1.0, completed=result.progress
                    )
            sleep(interval_s)
            interval_s = min(MAX_POLL_INTERVAL_S, interval_s * POLL_INTERVAL_GROWTH)
