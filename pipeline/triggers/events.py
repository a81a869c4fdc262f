"""Storage events: the notifications of S3, MinIO, SNS and EventBridge, read into one
shape, `ObjectEvent`.

The shapes read (any of them may arrive by SQS or by a post to the receiver):

    S3 notification        {"Records": [{"eventName": "ObjectCreated:Put", "s3": {…}}]}
    MinIO notification     the same, plus "EventName" and "Key"; "s3:" before eventName
    S3 test message        {"Service": "Amazon S3", "Event": "s3:TestEvent", …}
    SNS envelope           {"Type": "Notification", "TopicArn": …, "Message": "<JSON>"}
                           whose Message is one of the other shapes
    EventBridge event      {"source": "aws.s3", "detail-type": "Object Created",
                            "detail": {"bucket": {…}, "object": {…}, "reason": …}}

Only created objects become events; test messages, subscription confirmations, deletes
and every other event type read as no events. Anything else is a `MalformedEvent`, and
no input raises any other exception.

Keys differ by source: S3 (and moto) and MinIO form-encode them (`+` is a space, `%2B`
a plus), EventBridge sends them raw.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

from pipeline.errors import MalformedEvent
from pipeline.triggers.event_json import describe, kind, load_json, quote

# S3 sequencers are 16 to 18 hex digits today; a longer one is kept whole.
SEQUENCER_WIDTH = 32

CREATED_EVENT_NAMES = frozenset(
    {
        "ObjectCreated:Put",
        "ObjectCreated:Post",
        "ObjectCreated:Copy",
        "ObjectCreated:CompleteMultipartUpload",
    }
)
EVENTBRIDGE_CREATED = "Object Created"
# SNS messages that only manage the subscription: nothing for fillpipe to do.
SNS_HOUSEKEEPING = frozenset({"SubscriptionConfirmation", "UnsubscribeConfirmation"})


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


def from_sqs_body(body: str) -> list[ObjectEvent]:
    """The created-object events of one SQS message body (origin "sqs")."""
    if not isinstance(body, str):
        raise MalformedEvent(f"an SQS message body is text, not {type(body).__name__}")
    return _read_message(load_json(body), "sqs", in_sns=False)


def from_webhook(body: bytes) -> list[ObjectEvent]:
    """The created-object events of one POST body to /v1/events/s3 (origin "webhook")."""
    if not isinstance(body, bytes | bytearray):
        raise MalformedEvent(f"a request body is bytes, not {type(body).__name__}")
    try:
        text = bytes(body).decode("utf-8")
    except UnicodeDecodeError as error:
        raise MalformedEvent(f"the event body is not UTF-8 ({error.reason})") from None
    return _read_message(load_json(text), "webhook", in_sns=False)


def sequencer_order(sequencer: str) -> str:
    """`sequencer` in a form whose string order is the order of the events of one key.

    S3 says the greater hexadecimal sequencer happened later, and that sequencers of
    different lengths compare after right-padding the shorter with zeros. The result is
    upper case and right-padded with "0" to `SEQUENCER_WIDTH` characters; a longer one is
    kept whole, less any trailing zeros (which a right-padded comparison ignores), so
    that it still compares right against padded ones.
    """
    return sequencer.strip().upper().rstrip("0").ljust(SEQUENCER_WIDTH, "0")


def _read_message(doc: object, origin: str, *, in_sns: bool) -> list[ObjectEvent]:
    """The events of one parsed message, whichever known shape it has."""
    if not isinstance(doc, dict):
        raise MalformedEvent(f"an event message is a JSON object, not {kind(doc)}")
    if "Records" in doc:
        return _read_records(doc["Records"], origin)
    if doc.get("Event") == "s3:TestEvent":
        return []
    if "Type" in doc and "TopicArn" in doc:
        if in_sns:
            raise MalformedEvent("an SNS notification inside an SNS notification")
        return _read_sns(doc, origin)
    if doc.get("source") == "aws.s3" and "detail-type" in doc:
        return _read_eventbridge(doc, origin)
    raise MalformedEvent(f"not an S3, MinIO, SNS or EventBridge event: {describe(doc)}")


def _read_sns(doc: dict[str, Any], origin: str) -> list[ObjectEvent]:
    """The events of the notification an SNS envelope carries as its Message."""
    message_type = doc["Type"]
    if isinstance(message_type, str) and message_type in SNS_HOUSEKEEPING:
        return []
    if message_type != "Notification":
        raise MalformedEvent(f"an SNS message of Type {quote(message_type)}, not a Notification")
    message = doc.get("Message")
    if not isinstance(message, str):
        raise MalformedEvent(f"an SNS notification whose Message is {kind(message)}")
    try:
        return _read_message(load_json(message), origin, in_sns=True)
    except MalformedEvent as error:
        raise MalformedEvent(f"the SNS notification's Message: {error}") from None


def _read_records(records: object, origin: str) -> list[ObjectEvent]:
    """The created-object events among S3 or MinIO notification records."""
    if not isinstance(records, list):
        raise MalformedEvent(f"Records is {kind(records)}, not a list")
    events = []
    for index, record in enumerate(records):
        try:
            event = _read_record(record, origin)
        except MalformedEvent as error:
            raise MalformedEvent(f"record {index}: {error}") from None
        if event is not None:
            events.append(event)
    return events


def _read_record(record: object, origin: str) -> ObjectEvent | None:
    """One S3 or MinIO record as an event, or None when it is no created object."""
    fields = _object(record, "the record")
    source = fields.get("eventSource", "aws:s3")
    if not isinstance(source, str) or not source.endswith(":s3"):
        raise MalformedEvent(f"eventSource {quote(source)} is not S3's")
    name = _text(fields.get("eventName"), "eventName").removeprefix("s3:")
    if name not in CREATED_EVENT_NAMES:
        return None
    s3 = _object(fields.get("s3"), "s3")
    item = _object(s3.get("object"), "s3.object")
    return ObjectEvent(
        bucket=_bucket_name(s3.get("bucket"), "s3.bucket"),
        key=_form_encoded_key(item.get("key"), "s3.object.key"),
        etag=_etag(item.get("eTag")),
        version_id=_version_id(item.get("versionId")),
        sequencer=_optional_text(item.get("sequencer")),
        size=_size(item.get("size")),
        event_name=name,
        event_time=_optional_text(fields.get("eventTime")),
        origin=origin,
    )


def _read_eventbridge(doc: dict[str, Any], origin: str) -> list[ObjectEvent]:
    """An EventBridge S3 event as one event ("Object Created"), or none (any other)."""
    if _text(doc["detail-type"], "detail-type") != EVENTBRIDGE_CREATED:
        return []
    detail = _object(doc.get("detail"), "detail")
    item = _object(detail.get("object"), "detail.object")
    # Real EventBridge spells it "etag"; moto sends "eTag".
    etag = item["etag"] if "etag" in item else item.get("eTag")
    return [
        ObjectEvent(
            bucket=_bucket_name(detail.get("bucket"), "detail.bucket"),
            key=_raw_key(_text(item.get("key"), "detail.object.key"), "detail.object.key"),
            etag=_etag(etag),
            version_id=_version_id(item.get("version-id")),
            sequencer=_optional_text(item.get("sequencer")),
            size=_size(item.get("size")),
            event_name=_eventbridge_name(detail.get("reason")),
            event_time=_optional_text(doc.get("time")),
            origin=origin,
        )
    ]


def _eventbridge_name(reason: object) -> str:
    """The event name: "ObjectCreated:" and the S3 call that made the object ("PutObject").

    moto sends "ObjectCreated" itself as the reason; that is not repeated.
    """
    text = _optional_text(reason)
    if text is None or text == "ObjectCreated":
        return "ObjectCreated"
    return "ObjectCreated:" + text


def _form_encoded_key(value: object, where: str) -> str:
    """A key as S3 and MinIO send it: form-encoded ("+" a space, "%2B" a plus)."""
    encoded = _text(value, where)
    try:
        decoded = unquote_plus(encoded, errors="strict")
    except UnicodeDecodeError:
        raise MalformedEvent(f"{where} {quote(encoded)} decodes to bytes not UTF-8") from None
    return _raw_key(decoded, where)


def _raw_key(key: str, where: str) -> str:
    """A decoded key, refused when S3 could not hold it (empty, or not UTF-8)."""
    if not key:
        raise MalformedEvent(f"{where} is empty")
    try:
        key.encode("utf-8")
    except UnicodeEncodeError:
        raise MalformedEvent(f"{where} is not valid Unicode (a lone surrogate)") from None
    return key


def _bucket_name(value: object, where: str) -> str:
    return _text(_object(value, where).get("name"), where + ".name")


def _etag(value: object) -> str | None:
    """The etag without the quotes some sources keep around it."""
    return _optional_text(value.strip('"') if isinstance(value, str) else None)


def _version_id(value: object) -> str | None:
    """The version id; S3 sends the string "null" for objects of unversioned buckets."""
    text = _optional_text(value)
    return None if text == "null" else text


def _size(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def _optional_text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _text(value: object, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise MalformedEvent(f"{where} is {kind(value)}, not a non-empty string")
    return value


def _object(value: object, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MalformedEvent(f"{where} is {kind(value)}, not a JSON object")
    return value
