"""Storage event notifications read into `ObjectEvent`s: every source's shape, its key
encoding, the messages that make no job, and malformed input (never another exception).

The samples follow the shapes of AWS's documentation ("Event message structure",
"EventBridge event message structure"), of MinIO's `event.Event` (cmd/event-notification.go,
key through Go's `url.QueryEscape`) and of moto's generator (moto/s3/notifications.py).
The messages a real moto server sends through SQS, SNS and EventBridge are read in
tests/triggers/test_sqs.py.
"""

import contextlib
import json
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.errors import MalformedEvent
from pipeline.triggers.events import (
    SEQUENCER_WIDTH,
    ObjectEvent,
    from_sqs_body,
    from_webhook,
    sequencer_order,
)

pytestmark = pytest.mark.timeout(30)

BUCKET = "photo-inbox"

# ---------------------------------------------------------------- sample builders


def s3_record(key="HappyFace.jpg", name="ObjectCreated:Put", **object_fields):
    """One record of an S3 notification, as AWS documents it (key already encoded)."""
    item = {
        "key": key,
        "size": 1024,
        "eTag": "d41d8cd98f00b204e9800998ecf8427e",
        "versionId": "096fKKXTRTtl3on89fVO.nfljtsv6qko",
        "sequencer": "0055AED6DCD90281E5",
    }
    item.update(object_fields)
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": "us-west-2",
        "eventTime": "2024-05-01T10:00:00.000Z",
        "eventName": name,
        "userIdentity": {"principalId": "AIDAJDPLRKLG7UEXAMPLE"},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {
            "x-amz-request-id": "C3D13FE58DE4C810",
            "x-amz-id-2": "FMyUVURIY8/IgAtTv8xRjskZQpcIZ9KG4V5Wp6S7S/JRWeUWerMUE5JgHvANOjpD",
        },
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "fillpipe-inbox",
            "bucket": {
                "name": BUCKET,
                "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                "arn": f"arn:aws:s3:::{BUCKET}",
            },
            "object": item,
        },
    }


def s3_message(*records):
    return json.dumps({"Records": list(records)})


def sns_envelope(inner, message_type="Notification"):
    """SNS → SQS without raw message delivery: the notification is a JSON string."""
    return json.dumps(
        {
            "Type": message_type,
            "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
            "TopicArn": "arn:aws:sns:us-west-2:123456789012:photo-events",
            "Subject": "Amazon S3 Notification",
            "Message": inner if isinstance(inner, str) else json.dumps(inner),
            "Timestamp": "2024-05-01T10:00:00.120Z",
            "SignatureVersion": "1",
            "Signature": "EXAMPLEpH+DcEwjAPg8O9mY8dReBSwksfg2S7WKQcikcNKWLQjwu6A4VbeS0QHVCkhRS7",
            "SigningCertURL": "https://sns.us-west-2.amazonaws.com/SimpleNotificationService-x.pem",
            "UnsubscribeURL": "https://sns.us-west-2.amazonaws.com/?Action=Unsubscribe",
        }
    )


def minio_body(key, name="s3:ObjectCreated:Put", bucket="images"):
    """A MinIO webhook post: `key` is the object name; MinIO query-escapes it."""
    record = {
        "eventVersion": "2.0",
        "eventSource": "minio:s3",
        "awsRegion": "",
        "eventTime": "2024-05-01T10:00:00.000Z",
        "eventName": name,
        "userIdentity": {"principalId": "minioadmin"},
        "requestParameters": {"accessKey": "minioadmin", "region": "", "sourceIPAddress": "::1"},
        "responseElements": {"x-amz-request-id": "17CB3C6A8E2F1D37"},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "Config",
            "bucket": {"name": bucket, "ownerIdentity": {"principalId": "minioadmin"}},
            "object": {
                "key": quote_plus(key),  # Go's url.QueryEscape: "/" too, space as "+"
                "size": 200436,
                "eTag": "5fc7298143efe1276d39a3466d4e255f-1",
                "contentType": "image/jpeg",
                "userMetadata": {"content-type": "image/jpeg"},
                "versionId": "1",
                "sequencer": "17CB3C6A8E6A58B2",
            },
        },
        "source": {"host": "::1", "port": "", "userAgent": "MinIO (linux; amd64) mc/2024"},
    }
    return json.dumps({"EventName": name, "Key": f"{bucket}/{key}", "Records": [record]}).encode()


def eventbridge_event(key="example-key", detail_type="Object Created", **object_fields):
    """An S3 event as EventBridge delivers it: the key is raw, not encoded."""
    item = {
        "key": key,
        "size": 5,
        "etag": "b1946ac92492d2347c6235b4d2611184",
        "version-id": "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e",
        "sequencer": "617f08299329d189",
    }
    item.update(object_fields)
    return {
        "version": "0",
        "id": "17793124-05d4-b198-2fde-7ededc63b103",
        "detail-type": detail_type,
        "source": "aws.s3",
        "account": "111122223333",
        "time": "2021-11-12T00:00:00Z",
        "region": "ca-central-1",
        "resources": [f"arn:aws:s3:::{BUCKET}"],
        "detail": {
            "version": "0",
            "bucket": {"name": BUCKET},
            "object": item,
            "request-id": "N4N7GDK58NMKJ12R",
            "requester": "123456789012",
            "source-ip-address": "1.2.3.4",
            "reason": "PutObject",
        },
    }


TEST_EVENT = {
    "Service": "Amazon S3",
    "Event": "s3:TestEvent",
    "Time": "2024-05-01T09:59:00.089Z",
    "Bucket": BUCKET,
    "RequestId": "5582815E1AEA5ADF",
    "HostId": "8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE",
}


def only(events):
    assert len(events) == 1, events
    return events[0]


# ---------------------------------------------------------------- whole samples


def test_s3_put_notification_reads_every_field():
    event = only(from_sqs_body(s3_message(s3_record())))
    assert event == ObjectEvent(
        bucket=BUCKET,
        key="HappyFace.jpg",
        etag="d41d8cd98f00b204e9800998ecf8427e",
        version_id="096fKKXTRTtl3on89fVO.nfljtsv6qko",
        sequencer="0055AED6DCD90281E5",
        size=1024,
        event_name="ObjectCreated:Put",
        event_time="2024-05-01T10:00:00.000Z",
        origin="sqs",
    )


def test_several_records_keep_their_order_and_skip_non_creations():
    body = s3_message(
        s3_record("a.png"),
        s3_record("b.png", name="ObjectRemoved:Delete"),
        s3_record("c.png", name="ObjectCreated:CompleteMultipartUpload"),
    )
    events = from_sqs_body(body)
    assert [(e.key, e.event_name) for e in events] == [
        ("a.png", "ObjectCreated:Put"),
        ("c.png", "ObjectCreated:CompleteMultipartUpload"),
    ]


def test_sns_wrapped_notification_reads_like_the_raw_one():
    raw = only(from_sqs_body(s3_message(s3_record("x/y.png"))))
    wrapped = only(from_sqs_body(sns_envelope({"Records": [s3_record("x/y.png")]})))
    assert wrapped == raw


def test_eventbridge_object_created_reads_every_field():
    event = only(from_sqs_body(json.dumps(eventbridge_event())))
    assert event == ObjectEvent(
        bucket=BUCKET,
        key="example-key",
        etag="b1946ac92492d2347c6235b4d2611184",
        version_id="IYV3p45BT0ac8hjHg1houSdS1a.Mro8e",
        sequencer="617f08299329d189",
        size=5,
        event_name="ObjectCreated:PutObject",
        event_time="2021-11-12T00:00:00Z",
        origin="sqs",
    )


def test_eventbridge_multipart_upload_names_its_reason():
    doc = eventbridge_event(etag="4af981f98d22a0b9979da24b259e5e42-12")
    doc["detail"]["reason"] = "CompleteMultipartUpload"
    event = only(from_webhook(json.dumps(doc).encode()))
    assert (event.event_name, event.etag, event.origin) == (
        "ObjectCreated:CompleteMultipartUpload",
        "4af981f98d22a0b9979da24b259e5e42-12",
        "webhook",
    )


def test_minio_webhook_post_reads_every_field():
    event = only(from_webhook(minio_body("myphoto.jpg")))
    assert event == ObjectEvent(
        bucket="images",
        key="myphoto.jpg",
        etag="5fc7298143efe1276d39a3466d4e255f-1",
        version_id="1",
        sequencer="17CB3C6A8E6A58B2",
        size=200436,
        event_name="ObjectCreated:Put",
        event_time="2024-05-01T10:00:00.000Z",
        origin="webhook",
    )


def test_every_shape_is_accepted_by_both_readers():
    bodies = [
        s3_message(s3_record()),
        sns_envelope({"Records": [s3_record()]}),
        json.dumps(eventbridge_event()),
        minio_body("a.png").decode(),
    ]
    for body in bodies:
        assert only(from_sqs_body(body)).origin == "sqs"
        assert only(from_webhook(body.encode())).origin == "webhook"


# ---------------------------------------------------------------- key decoding

# (as S3, moto and MinIO send it, decoded)
FORM_ENCODED_KEYS = [
    ("red+flower.jpg", "red flower.jpg"),
    ("a%2Bb.png", "a+b.png"),
    ("a%2Bb+c.png", "a+b c.png"),
    ("dir/sub/x.png", "dir/sub/x.png"),
    ("dir%2Fsub%2Fx.png", "dir/sub/x.png"),
    ("100%25.png", "100%.png"),
    ("%2525.png", "%25.png"),
    ("caf%C3%A9+%E2%98%95.png", "café ☕.png"),
    ("%F0%9F%90%88%2F%E7%8C%AB.png", "🐈/猫.png"),
    ("photos%2Fmy+summer%282024%29.jpg", "photos/my summer(2024).jpg"),
]


@pytest.mark.parametrize(("encoded", "key"), FORM_ENCODED_KEYS)
def test_s3_keys_are_form_decoded(encoded, key):
    assert only(from_sqs_body(s3_message(s3_record(encoded)))).key == key


@pytest.mark.parametrize(("encoded", "key"), FORM_ENCODED_KEYS)
def test_sns_wrapped_keys_are_form_decoded(encoded, key):
    body = sns_envelope({"Records": [s3_record(encoded)]})
    assert only(from_sqs_body(body)).key == key


@pytest.mark.parametrize(("encoded", "key"), FORM_ENCODED_KEYS)
def test_s3_keys_posted_to_the_receiver_are_form_decoded(encoded, key):
    assert only(from_webhook(s3_message(s3_record(encoded)).encode())).key == key


RAW_KEYS = [
    "red flower.jpg",
    "a+b.png",
    "100%.png",
    "100%25.png",
    "a%2Bb.png",
    "dir/sub/x.png",
    "café ☕.png",
    "🐈/猫 + 犬.png",
]


@pytest.mark.parametrize("key", RAW_KEYS)
def test_minio_keys_come_back_as_named(key):
    assert only(from_webhook(minio_body(key))).key == key


@pytest.mark.parametrize("key", RAW_KEYS)
def test_eventbridge_keys_are_raw(key):
    doc = eventbridge_event(key)
    assert only(from_sqs_body(json.dumps(doc))).key == key
    assert only(from_webhook(json.dumps(doc, ensure_ascii=False).encode())).key == key


def test_a_slash_left_raw_by_s3_and_one_escaped_decode_alike():
    raw = only(from_sqs_body(s3_message(s3_record(quote_plus("a b/c", safe="/")))))
    escaped = only(from_sqs_body(s3_message(s3_record(quote_plus("a b/c")))))
    assert raw.key == escaped.key == "a b/c"


keys = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=60)


@settings(max_examples=300, deadline=None)
@given(key=keys)
def test_any_key_survives_each_source(key):
    assert only(from_sqs_body(s3_message(s3_record(quote_plus(key))))).key == key
    assert only(from_sqs_body(s3_message(s3_record(quote(key, safe="/"))))).key == key
    assert only(from_webhook(minio_body(key))).key == key
    assert only(from_sqs_body(json.dumps(eventbridge_event(key)))).key == key


# ---------------------------------------------------------------- other fields


def test_etag_loses_its_quotes():
    event = only(from_sqs_body(s3_message(s3_record(eTag='"9b2cf535f27731c974343645a3985328"'))))
    assert event.etag == "9b2cf535f27731c974343645a3985328"


@pytest.mark.parametrize("fields", [{"versionId": "null"}, {"versionId": None}, {}])
def test_version_id_is_none_for_unversioned_objects(fields):
    record = s3_record(**fields)
    record["s3"]["object"].pop("versionId", None)
    record["s3"]["object"].update(fields)
    assert only(from_sqs_body(s3_message(record))).version_id is None


def test_eventbridge_version_id_null_is_none():
    doc = eventbridge_event(**{"version-id": "null"})
    assert only(from_sqs_body(json.dumps(doc))).version_id is None


def test_fields_a_source_leaves_out_are_none():
    record = s3_record()
    record["s3"]["object"] = {"key": "k.png"}
    del record["eventTime"]
    event = only(from_sqs_body(s3_message(record)))
    assert (event.etag, event.version_id, event.sequencer, event.size, event.event_time) == (
        (None,) * 5
    )


@pytest.mark.parametrize("size", ["1024", 10.5, -1, True, None])
def test_a_size_that_is_not_a_count_is_none(size):
    assert only(from_sqs_body(s3_message(s3_record(size=size)))).size is None


def test_zero_size_is_kept():
    assert only(from_sqs_body(s3_message(s3_record(size=0)))).size == 0


def test_eventbridge_accepts_moto_spelling_of_etag():
    doc = eventbridge_event()
    doc["detail"]["object"]["eTag"] = doc["detail"]["object"].pop("etag")
    assert only(from_sqs_body(json.dumps(doc))).etag == "b1946ac92492d2347c6235b4d2611184"


@pytest.mark.parametrize(
    ("reason", "name"),
    [
        (None, "ObjectCreated"),
        ("CopyObject", "ObjectCreated:CopyObject"),
        ("ObjectCreated", "ObjectCreated"),
    ],
)
def test_eventbridge_event_name_follows_the_reason(reason, name):
    doc = eventbridge_event()
    doc["detail"]["reason"] = reason
    assert only(from_sqs_body(json.dumps(doc))).event_name == name


# ---------------------------------------------------------------- event types

CREATED = [
    "ObjectCreated:Put",
    "ObjectCreated:Post",
    "ObjectCreated:Copy",
    "ObjectCreated:CompleteMultipartUpload",
]
NOT_CREATED = [
    "ObjectRemoved:Delete",
    "ObjectRemoved:DeleteMarkerCreated",
    "ObjectRestore:Completed",
    "ObjectTagging:Put",
    "ObjectAcl:Put",
    "LifecycleExpiration:Delete",
    "ObjectAccessed:Get",
    "ObjectCreated:PutRetention",  # MinIO: a retention change, no new object
    "Replication:OperationFailedReplication",
]


@pytest.mark.parametrize("name", CREATED)
@pytest.mark.parametrize("prefix", ["", "s3:"])
def test_created_event_names_make_events(name, prefix):
    assert only(from_sqs_body(s3_message(s3_record(name=prefix + name)))).event_name == name


@pytest.mark.parametrize("name", NOT_CREATED)
@pytest.mark.parametrize("prefix", ["", "s3:"])
def test_other_event_names_make_none(name, prefix):
    assert from_sqs_body(s3_message(s3_record(name=prefix + name))) == []


def test_minio_delete_makes_none():
    assert from_webhook(minio_body("a.png", name="s3:ObjectRemoved:Delete")) == []


@pytest.mark.parametrize(
    "detail_type",
    ["Object Deleted", "Object Restore Completed", "Object Tags Added", "Object ACL Updated"],
)
def test_other_eventbridge_types_make_none(detail_type):
    doc = eventbridge_event(detail_type=detail_type)
    assert from_sqs_body(json.dumps(doc)) == []
    assert from_webhook(json.dumps(doc).encode()) == []


def test_s3_test_event_makes_none():
    assert from_sqs_body(json.dumps(TEST_EVENT)) == []
    assert from_webhook(json.dumps(TEST_EVENT).encode()) == []


def test_s3_test_event_inside_sns_makes_none():
    assert from_sqs_body(sns_envelope(TEST_EVENT)) == []


@pytest.mark.parametrize("message_type", ["SubscriptionConfirmation", "UnsubscribeConfirmation"])
def test_sns_subscription_messages_make_none(message_type):
    body = sns_envelope("You have chosen to subscribe to the topic …", message_type)
    assert from_sqs_body(body) == []
    assert from_webhook(body.encode()) == []


def test_empty_records_make_none():
    assert from_sqs_body('{"Records": []}') == []


# ---------------------------------------------------------------- malformed input


def malformed(body):
    """The MalformedEvent message for `body`, through both readers."""
    with pytest.raises(MalformedEvent) as from_sqs:
        from_sqs_body(body)
    with pytest.raises(MalformedEvent) as posted:
        from_webhook(body.encode("utf-8", "surrogatepass"))
    assert str(from_sqs.value) == str(posted.value)
    return str(from_sqs.value)


def with_record(change):
    record = s3_record()
    change(record)
    return s3_message(record)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("", "not JSON"),
        ("<xml/>", "not JSON"),
        ('{"Records": [', "not JSON"),
        ("[]", "JSON object, not a list"),
        ('"Records"', "not the string 'Records'"),
        ("42", "not a number"),
        ("null", "not missing or null"),
        ("{}", "an empty JSON object"),
        ('{"hello": "world"}', "keys 'hello'"),
        ('{"Records": {}}', "Records is a JSON object, not a list"),
        ('{"Records": [42]}', "record 0: the record is a number"),
        ('{"Records": [{"eventName": "ObjectCreated:Put"}]}', "record 0: s3 is missing"),
        ('{"size": NaN, "Records": []}', "'NaN', which is not JSON"),
        ('{"Records": [], "n": ' + "9" * 5000 + "}", "over-long number"),
        ("[" * 100_000 + "]" * 100_000, "nests too deeply"),
        ('{"source": "aws.s3", "detail-type": "Object Created"}', "detail is missing"),
        ('{"source": "aws.s3", "detail-type": 7}', "detail-type is a number"),
        ('{"source": "aws.ec2", "detail-type": "EC2 Instance State-change"}', "not an S3"),
    ],
)
def test_malformed_bodies_say_what_is_wrong(body, says):
    assert says in malformed(body)


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda r: r["s3"]["object"].pop("key"), "s3.object.key is missing"),
        (lambda r: r["s3"]["object"].update(key=""), "s3.object.key is an empty string"),
        (lambda r: r["s3"]["object"].update(key=7), "s3.object.key is a number"),
        (lambda r: r["s3"]["object"].update(key="%FF.png"), "not UTF-8"),
        (lambda r: r["s3"]["object"].update(key="%ED%A0%80"), "not UTF-8"),
        (lambda r: r["s3"]["object"].update(key="\ud800.png"), "lone surrogate"),
        (lambda r: r["s3"].pop("bucket"), "s3.bucket is missing"),
        (lambda r: r["s3"]["bucket"].update(name=""), "s3.bucket.name is an empty string"),
        (lambda r: r["s3"].update(object=[]), "s3.object is a list"),
        (lambda r: r.update(eventName=None), "eventName is missing"),
        (lambda r: r.update(eventSource="aws:sqs"), "eventSource 'aws:sqs' is not S3's"),
    ],
)
def test_malformed_records_say_what_is_wrong(change, says):
    text = malformed(with_record(change))
    assert text.startswith("record 0: ") and says in text


def test_a_bad_record_refuses_the_whole_message():
    bad = s3_record()
    bad["s3"]["object"]["key"] = ""
    text = malformed(s3_message(s3_record(), bad))
    assert text.startswith("record 1: ")


def test_a_bad_record_of_a_delete_is_not_looked_into():
    record = s3_record(name="ObjectRemoved:Delete")
    del record["s3"]
    assert from_sqs_body(s3_message(record)) == []


def test_eventbridge_key_must_be_a_string():
    doc = eventbridge_event()
    doc["detail"]["object"]["key"] = ["a"]
    assert "detail.object.key is a list" in malformed(json.dumps(doc))


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (sns_envelope("not json at all"), "the SNS notification's Message: the event body is not"),
        (sns_envelope({"Records": 1}), "Message: Records is a number"),
        (sns_envelope(sns_envelope(TEST_EVENT)), "an SNS notification inside an SNS"),
        (sns_envelope(TEST_EVENT, "Bogus"), "SNS message of Type 'Bogus'"),
        (sns_envelope(TEST_EVENT, ["Notification"]), "SNS message of Type a list"),
        (json.dumps({"Type": "Notification", "TopicArn": "arn", "Message": {}}), "Message is"),
    ],
)
def test_malformed_sns_envelopes_say_what_is_wrong(body, says):
    assert says in malformed(body)


def test_non_utf8_posts_are_malformed():
    with pytest.raises(MalformedEvent, match="not UTF-8"):
        from_webhook(b'{"Records": []}\xff')


def test_wrong_argument_types_are_malformed():
    with pytest.raises(MalformedEvent):
        from_sqs_body(b"{}")  # type: ignore[arg-type]
    with pytest.raises(MalformedEvent):
        from_webhook("{}")  # type: ignore[arg-type]


def test_huge_bodies_are_not_echoed():
    huge_key = "k" * 1_000_000
    for body in [
        json.dumps({huge_key: 1}),
        json.dumps({"Type": huge_key, "TopicArn": "arn"}),
        s3_message(s3_record(huge_key + "%FF")),
        "x" * 1_000_000,
        '{"Records": "' + huge_key + '"}',
    ]:
        assert len(malformed(body)) < 300


# ---------------------------------------------------------------- never another exception

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
# Names and values the readers look for, so fuzzing reaches past the first check.
FIELD_NAMES = [
    "Records",
    "Event",
    "Type",
    "TopicArn",
    "Message",
    "source",
    "detail-type",
    "detail",
    "eventSource",
    "eventName",
    "s3",
    "bucket",
    "object",
    "name",
    "key",
    "eTag",
    "etag",
    "versionId",
    "version-id",
    "sequencer",
    "size",
    "reason",
    "eventTime",
    "time",
]
SPECIAL_VALUES = [
    "s3:TestEvent",
    "aws.s3",
    "Object Created",
    "Notification",
    "SubscriptionConfirmation",
    "ObjectCreated:Put",
    "s3:ObjectCreated:Copy",
    "aws:s3",
    "%FF",
    "%",
    "+",
    "null",
    "",
]
field_names = st.sampled_from(FIELD_NAMES)
leaves = scalars | st.sampled_from(SPECIAL_VALUES)
shaped_values = st.recursive(
    leaves,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(field_names, children, max_size=6)
    ),
    max_leaves=20,
)


def read_both(body: bytes) -> None:
    """Either reader answers with events or MalformedEvent; both answer alike."""
    outcomes = []
    for read, arg in [(from_webhook, body), (from_sqs_body, None)]:
        if arg is None:
            try:
                arg = body.decode("utf-8")
            except UnicodeDecodeError:
                continue
        try:
            events = read(arg)
        except MalformedEvent:
            outcomes.append("malformed")
            continue
        assert all(isinstance(e, ObjectEvent) and e.key and e.bucket for e in events)
        outcomes.append([(e.bucket, e.key, e.etag, e.size) for e in events])
    assert len(set(map(repr, outcomes))) <= 1


@settings(max_examples=500, deadline=None)
@given(body=st.binary(max_size=400))
def test_arbitrary_bytes_never_raise_anything_else(body):
    read_both(body)


@settings(max_examples=300, deadline=None)
@given(text=st.text(st.characters(exclude_categories=[]), max_size=300))
def test_arbitrary_text_never_raises_anything_else(text):
    with contextlib.suppress(MalformedEvent):
        events = from_sqs_body(text)
        assert all(isinstance(e, ObjectEvent) for e in events)


@settings(max_examples=500, deadline=None)
@given(doc=shaped_values)
def test_arbitrary_json_never_raises_anything_else(doc):
    read_both(json.dumps(doc).encode())
    read_both(sns_envelope(doc).encode())
    read_both(s3_message(doc).encode())


@settings(max_examples=300, deadline=None)
@given(
    record_object=st.dictionaries(field_names, leaves, max_size=8),
    detail_object=st.dictionaries(field_names, leaves, max_size=8),
    name=leaves,
)
def test_nearly_right_notifications_never_raise_anything_else(record_object, detail_object, name):
    record = s3_record(name=name)
    record["s3"]["object"] = record_object
    doc = eventbridge_event()
    doc["detail"]["object"] = detail_object
    read_both(s3_message(record).encode())
    read_both(json.dumps(doc).encode())


# ---------------------------------------------------------------- sequencer order


def test_sequencer_order_right_pads_to_a_fixed_width():
    assert sequencer_order("0055AED6DCD90281E5") == "0055AED6DCD90281E5" + "0" * 14
    assert len(sequencer_order("617f08299329d189")) == SEQUENCER_WIDTH == 32


def test_sequencer_order_ignores_case():
    assert sequencer_order("617f08299329d189") == sequencer_order("617F08299329D189")


def test_sequencer_order_orders_by_right_padded_hex():
    # S3: "the sequencers can be of different lengths; right pad the shorter value
    # with zeros, then compare lexicographically".
    earlier, later = "0055AED6DCD90281E5", "0055AED6DCD90281E6"
    assert sequencer_order(earlier) < sequencer_order(later)
    assert sequencer_order("0055AED6DCD9") < sequencer_order("0055AED6DCD90281E5")
    assert sequencer_order("0055AED6DCDA") > sequencer_order("0055AED6DCD90281E5")
    assert sequencer_order("0055AED6DCD9") == sequencer_order("0055AED6DCD900")


def test_a_sequencer_longer_than_the_width_is_kept_whole():
    long = "ABCDEF0123456789" * 3
    assert sequencer_order(long) == long
    assert sequencer_order(long + "0000") == long


hex_digits = st.text(alphabet="0123456789abcdefABCDEF", min_size=1, max_size=48)


def padded_compare(a: str, b: str) -> int:
    width = max(len(a), len(b))
    a, b = a.upper().ljust(width, "0"), b.upper().ljust(width, "0")
    return (a > b) - (a < b)


@settings(max_examples=500, deadline=None)
@given(a=hex_digits, b=hex_digits)
def test_sequencer_order_agrees_with_the_s3_rule(a, b):
    x, y = sequencer_order(a), sequencer_order(b)
    assert (x > y) - (x < y) == padded_compare(a, b)
