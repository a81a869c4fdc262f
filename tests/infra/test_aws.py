"""The AWS examples in infra/aws: each parses, each grants what the S3 trigger paths need
and no more, they name the same queue, topic, rule and bucket, match the example rules
file, and infra/DEPLOY.md applies every one of them."""

from __future__ import annotations

import json
import re
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import pytest

from tests.infra.examples import AWS, INFRA, example_rule, load_json

pytestmark = pytest.mark.timeout(30)

ACCOUNT = "123456789012"
BUCKET_ARN = "arn:aws:s3:::fillpipe"
QUEUE_ARN = f"arn:aws:sqs:us-east-1:{ACCOUNT}:fillpipe-events"
DLQ_ARN = f"{QUEUE_ARN}-dlq"
TOPIC_ARN = f"arn:aws:sns:us-east-1:{ACCOUNT}:fillpipe-events"
RULE_ARN = f"arn:aws:events:us-east-1:{ACCOUNT}:rule/fillpipe-object-created"
DESTINATION_ARN = f"arn:aws:events:us-east-1:{ACCOUNT}:api-destination/fillpipe-receiver/0a1b"
WATCHER_SQS_ACTIONS = [
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibility",
    "sqs:GetQueueAttributes",
]

# Every file in infra/aws, by kind; each kind has its test below.
KINDS = {
    "sqs-queue-attributes.json": "queue attributes",
    "sqs-dlq-attributes.json": "queue attributes",
    "sqs-queue-policy.json": "resource policy",
    "sqs-queue-policy-sns.json": "resource policy",
    "sqs-queue-policy-eventbridge.json": "resource policy",
    "sns-topic-policy.json": "resource policy",
    "eventbridge-invoke-role-trust.json": "resource policy",
    "watcher-iam-policy.json": "identity policy",
    "eventbridge-invoke-role-policy.json": "identity policy",
    "s3-notification-sqs.json": "bucket notification",
    "s3-notification-sns.json": "bucket notification",
    "s3-notification-eventbridge.json": "bucket notification",
    "eventbridge-rule.json": "event pattern",
    "eventbridge-targets.json": "event targets",
}

# Resource policies: file -> (the one service it lets in, action, resource, conditions).
RESOURCE_POLICIES = {
    "sqs-queue-policy.json": (
        "s3.amazonaws.com",
        "sqs:SendMessage",
        QUEUE_ARN,
        {"aws:SourceArn": BUCKET_ARN, "aws:SourceAccount": ACCOUNT},
    ),
    "sns-topic-policy.json": (
        "s3.amazonaws.com",
        "sns:Publish",
        TOPIC_ARN,
        {"aws:SourceArn": BUCKET_ARN, "aws:SourceAccount": ACCOUNT},
    ),
    "sqs-queue-policy-sns.json": (
        "sns.amazonaws.com",
        "sqs:SendMessage",
        QUEUE_ARN,
        {"aws:SourceArn": TOPIC_ARN},
    ),
    "sqs-queue-policy-eventbridge.json": (
        "events.amazonaws.com",
        "sqs:SendMessage",
        QUEUE_ARN,
        {"aws:SourceArn": RULE_ARN},
    ),
    "eventbridge-invoke-role-trust.json": (
        "events.amazonaws.com",
        "sts:AssumeRole",
        None,
        {"aws:SourceAccount": ACCOUNT},
    ),
}

# Identity policies: (file, action, resource) each must allow; paths are under infra/.
_IMAGE = f"{BUCKET_ARN}/incoming/shoe.png"
_MASK = f"{BUCKET_ARN}/incoming/shoe.mask.png"
_OUTPUT = f"{BUCKET_ARN}/incoming/edited/shoe.png"
ALLOWED = [
    *[("aws/watcher-iam-policy.json", action, QUEUE_ARN) for action in WATCHER_SQS_ACTIONS],
    ("aws/watcher-iam-policy.json", "s3:ListBucket", BUCKET_ARN),
    ("aws/watcher-iam-policy.json", "s3:GetObject", _IMAGE),
    ("aws/watcher-iam-policy.json", "s3:GetObject", _MASK),
    ("aws/eventbridge-invoke-role-policy.json", "events:InvokeApiDestination", DESTINATION_ARN),
    # Workers run the jobs the example rule makes: read image and mask, write the output.
    ("iam-policy.json", "s3:GetObject", _IMAGE),
    ("iam-policy.json", "s3:GetObject", _MASK),
    ("iam-policy.json", "s3:PutObject", _OUTPUT),
    ("iam-policy.json", "s3:PutObjectTagging", _OUTPUT),
]
DENIED = [
    ("aws/watcher-iam-policy.json", "s3:PutObject", _OUTPUT),
    ("aws/watcher-iam-policy.json", "sqs:SendMessage", QUEUE_ARN),
    ("aws/watcher-iam-policy.json", "sqs:ReceiveMessage", DLQ_ARN),
    ("iam-policy.json", "s3:PutObject", _IMAGE),
]

# Bucket notifications: file -> (configuration list, the key naming its target, target).
NOTIFICATIONS = {
    "s3-notification-sqs.json": ("QueueConfigurations", "QueueArn", QUEUE_ARN),
    "s3-notification-sns.json": ("TopicConfigurations", "TopicArn", TOPIC_ARN),
}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def statements(policy: dict[str, Any]) -> list[dict[str, Any]]:
    assert policy["Version"] == "2012-10-17"
    return as_list(policy["Statement"])


def conditions(statement: dict[str, Any]) -> dict[str, Any]:
    """A statement's condition keys and values, whatever the (exact-match) operator."""
    found: dict[str, Any] = {}
    for operator, pairs in statement.get("Condition", {}).items():
        assert operator in {"ArnEquals", "StringEquals"}, operator
        found.update(pairs)
    return found


def allows(policy: dict[str, Any], action: str, resource: str) -> bool:
    """Whether an Allow statement names `action` on `resource` (wildcards as IAM has
    them; conditions are not evaluated)."""
    return any(
        statement["Effect"] == "Allow"
        and action in as_list(statement["Action"])
        and any(fnmatchcase(resource, pattern) for pattern in as_list(statement["Resource"]))
        for statement in statements(policy)
    )


@pytest.mark.parametrize("path", sorted(AWS.glob("*.json")), ids=lambda path: path.name)
def test_every_file_parses_and_has_a_kind(path: Path) -> None:
    load_json(path)
    assert path.name in KINDS, f"{path.name}: add it to KINDS and to its kind's test"


def test_every_listed_file_exists() -> None:
    assert {path.name for path in AWS.glob("*.json")} == set(KINDS)


@pytest.mark.parametrize("name", sorted(RESOURCE_POLICIES))
def test_resource_policies_let_in_one_service_for_one_source(name: str) -> None:
    service, action, resource, expected = RESOURCE_POLICIES[name]
    (statement,) = statements(load_json(AWS / name))
    assert statement["Effect"] == "Allow"
    assert statement["Principal"] == {"Service": service}
    assert as_list(statement["Action"]) == [action]
    assert statement.get("Resource") == resource
    assert conditions(statement) == expected


@pytest.mark.parametrize(("name", "action", "resource"), ALLOWED)
def test_identity_policies_allow_what_the_trigger_paths_need(
    name: str, action: str, resource: str
) -> None:
    assert allows(load_json(INFRA / name), action, resource)


@pytest.mark.parametrize(("name", "action", "resource"), DENIED)
def test_identity_policies_allow_no_more(name: str, action: str, resource: str) -> None:
    assert not allows(load_json(INFRA / name), action, resource)


@pytest.mark.parametrize("name", sorted(NOTIFICATIONS))
def test_bucket_notifications_send_the_example_rule_objects(name: str) -> None:
    key, target_key, target = NOTIFICATIONS[name]
    rule = example_rule()
    configuration = load_json(AWS / name)
    assert set(configuration) == {key}
    (entry,) = configuration[key]
    assert entry[target_key] == target
    assert entry["Events"] == ["s3:ObjectCreated:*"]
    filters = {item["Name"]: item["Value"] for item in entry["Filter"]["Key"]["FilterRules"]}
    assert filters == {"prefix": rule["prefix"], "suffix": rule["suffix"]}


def test_the_eventbridge_notification_turns_eventbridge_on() -> None:
    assert load_json(AWS / "s3-notification-eventbridge.json") == {"EventBridgeConfiguration": {}}


def test_the_event_pattern_keeps_object_created_under_the_rule_prefix() -> None:
    rule = example_rule()
    assert load_json(AWS / "eventbridge-rule.json") == {
        "source": ["aws.s3"],
        "detail-type": ["Object Created"],
        "detail": {
            "bucket": {"name": [rule["bucket"]]},
            "object": {"key": [{"prefix": rule["prefix"]}]},
        },
    }
    assert f"arn:aws:s3:::{rule['bucket']}" == BUCKET_ARN
    assert RULE_ARN.endswith("/fillpipe-object-created")


def test_the_event_targets_are_the_queue() -> None:
    (target,) = load_json(AWS / "eventbridge-targets.json")
    assert target["Arn"] == QUEUE_ARN
    assert target["Id"]


@pytest.mark.parametrize("name", ["sqs-queue-attributes.json", "sqs-dlq-attributes.json"])
def test_queue_attributes_are_strings_as_sqs_takes_them(name: str) -> None:
    attributes = load_json(AWS / name)
    assert all(isinstance(value, str) for value in attributes.values())
    assert attributes["SqsManagedSseEnabled"] == "true"


def test_the_queue_waits_60_s_and_gives_up_after_5_receives() -> None:
    attributes = load_json(AWS / "sqs-queue-attributes.json")
    assert attributes["VisibilityTimeout"] == "60"
    assert attributes["ReceiveMessageWaitTimeSeconds"] == "20"
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == DLQ_ARN
    assert int(redrive["maxReceiveCount"]) == 5


def test_deploy_md_applies_every_file_and_names_only_existing_ones() -> None:
    deploy = (INFRA / "DEPLOY.md").read_text()
    commands = "\n".join(re.findall(r"```sh\n(.*?)```", deploy, flags=re.DOTALL))
    named = set(re.findall(r"infra/aws/([\w.-]+\.json)", commands))
    assert named == set(KINDS)
    assert "infra/s3-notification.example.json" not in deploy
