"""Storage events: the notifications of S3, MinIO, SNS and EventBridge, read into one
shape, `ObjectEvent`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ObjectEvent:
    """An object was created (or overwritten) in a bucket.

    `key` is decoded (each source's own encoding undone). `etag` has no quotes.
    `version_id` and `sequencer` are None when the source does not send them; a
    sequencer orders the events of one key (a greater one happened later).
    `origin` names how the event reached fillpipe ("sqs", "webhook", "listing").
    """

    bucket: str
    key: str
    etag: str | None = None
    version_id: str | None = None
    sequencer: str | None = None
    size: int | None = None
    event_name: str = "ObjectCreated:Put"
    event_time: str | None = None
    origin: str = ""
