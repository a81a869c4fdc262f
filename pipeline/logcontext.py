"""The job a log line belongs to: ids carried in a context variable onto every record.

A Celery task (or the receiver, for one callback) runs its work inside `job_context`;
`JobContextFilter`, installed on the log handler, copies the current ids onto each record
as attributes (`record.batch`, `record.job`, ...), so every line logged meanwhile (by
fillpipe, httpx, boto3 or Celery) names its job without any call site passing the ids.
Context variables follow the thread, and the asyncio task, that set them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType

# The ids a line may carry, in the order the text format shows them.
FIELDS = ("batch", "job", "attempt", "provider_task", "celery_task")

LogValue = str | int
_EMPTY: Mapping[str, LogValue] = MappingProxyType({})
_current: ContextVar[Mapping[str, LogValue]] = ContextVar("fillpipe_log_context", default=_EMPTY)


@contextmanager
def job_context(
    *,
    batch: str | None = None,
    job: str | None = None,
    attempt: int | None = None,
    provider_task: str | None = None,
    celery_task: str | None = None,
) -> Iterator[None]:
    """Within the block, every log record carries these ids (those not None) on top of
    any already set; when the block ends the previous ids are back."""
    token = _current.set(
        _merged(
            batch=batch,
            job=job,
            attempt=attempt,
            provider_task=provider_task,
            celery_task=celery_task,
        )
    )
    try:
        yield
    finally:
        _current.reset(token)


def add_to_job_context(*, provider_task: str | None = None) -> None:
    """Add an id learnt midway (the provider's task, once the submit recorded it) to the
    current context, until the enclosing `job_context` ends. Outside any job's context
    (a sweep going through many jobs) it does nothing, so no id outlives its job."""
    if _current.get():
        _current.set(_merged(provider_task=provider_task))


def current_job_context() -> Mapping[str, LogValue]:
    """The ids set for the code running now (empty outside any `job_context`)."""
    return _current.get()


class JobContextFilter(logging.Filter):
    """Copies the current job's ids onto each record (never replacing an attribute the
    record already has); lets every record through."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in _current.get().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


def _merged(**fields: LogValue | None) -> Mapping[str, LogValue]:
    ids = dict(_current.get())
    ids.update({name: value for name, value in fields.items() if value is not None})
    return MappingProxyType(ids)
