"""The receiver's OpenAPI description, compared with a stored copy of it.

`openapi_snapshot.json` holds the description as built for the receiver's defaults and
for a required signature with a small body limit, keys in the order they are served.
A deliberate change to the description rewrites that file in the same commit.
"""

import json
from pathlib import Path

import pytest

from webhook_receiver.app import MAX_CALLBACK_BYTES
from webhook_receiver.openapi import openapi_schema

SNAPSHOT = Path(__file__).with_name("openapi_snapshot.json")
SMALL_BODY_BYTES = 4096

pytestmark = pytest.mark.timeout(10)


@pytest.mark.parametrize(
    ("variant", "max_body_bytes", "require_signature"),
    [
        ("default", MAX_CALLBACK_BYTES, False),
        ("signature_required", SMALL_BODY_BYTES, True),
    ],
)
def test_schema_matches_the_snapshot(variant, max_body_bytes, require_signature):
    stored = json.loads(SNAPSHOT.read_text(encoding="utf-8"))[variant]
    built = openapi_schema(max_body_bytes=max_body_bytes, require_signature=require_signature)
    assert json.dumps(built, indent=2) == json.dumps(stored, indent=2)
