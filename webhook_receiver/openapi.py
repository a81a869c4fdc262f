"""The receiver's OpenAPI 3.1 description, served at `GET /openapi.json`.

Written by hand so that it says exactly what the receiver does: the callback route with
its token, both provider body shapes, the two headers and every answer it gives. Each
builder returns a fresh part of the description, in the order it is served.
"""

from __future__ import annotations

from typing import Any

from pipeline.signing import SECRET_HEADER, SIGNATURE_HEADER

JSON_MEDIA_TYPE = "application/json"
SCHEMAS_PATH = "#/components/schemas/"
TASK_ID_MAX_CHARS = 200
STATUS_MAX_CHARS = 64
WEBHOOK_STATUS_EXAMPLES = ("SUCCESS", "processing", "FAILED", "Content Moderated")
RESULT_STATUS_EXAMPLES = (
    "Ready",
    "Pending",
    "Error",
    "Request Moderated",
    "Content Moderated",
    "Task not found",
)


def openapi_schema(
    *, max_body_bytes: int, require_signature: bool, events_max_body_bytes: int | None = None
) -> dict[str, Any]:
    """The description of the app built with these settings (with the storage event
    route when `events_max_body_bytes` is given)."""
    schema: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": _info(max_body_bytes),
        "paths": {
            "/v1/callbacks/bfl/{token}": {
                "post": _callback_operation(max_body_bytes, require_signature)
            },
            "/healthz": {"get": _health_operation()},
        },
        "components": {"schemas": _component_schemas()},
    }
    if events_max_body_bytes is not None:
        schema["paths"]["/v1/events/s3"] = {
            "post": _events_operation(events_max_body_bytes),
            "head": {
                "operationId": "storageEventsAlive",
                "summary": "MinIO's liveness check",
                "responses": {"200": {"description": "The route takes events."}},
            },
        }
        schema["components"]["securitySchemes"] = {
            "eventsBearer": {"type": "http", "scheme": "bearer"},
            "eventsApiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
        }
    return schema


def _events_operation(max_body_bytes: int) -> dict[str, Any]:
    return {
        "operationId": "storageEvents",
        "summary": "S3 event notifications: MinIO bucket webhooks, EventBridge API "
        "destinations (and S3 or SNS-wrapped notifications)",
        "security": [{"eventsBearer": []}, {"eventsApiKey": []}],
        "requestBody": {"required": True, "content": {JSON_MEDIA_TYPE: {"schema": {}}}},
        "responses": {
            "200": {
                "description": "Every job the events make is in the ledger (events that "
                "make none are acknowledged too).",
                "content": {
                    JSON_MEDIA_TYPE: {
                        "schema": {
                            "type": "object",
                            "required": ["status", "events", "jobs"],
                            "properties": {
                                "status": {"const": "ok"},
                                "events": {"type": "integer", "minimum": 0},
                                "jobs": {"type": "integer", "minimum": 0},
                            },
                        }
                    }
                },
            },
            "400": _detail("Not a storage event notification.", "not a storage event notification"),
            "401": _detail("No token, or the wrong one.", "unauthorized"),
            "413": _detail(f"The body is over {max_body_bytes} bytes.", "request body too large"),
            "503": _detail(
                "S3 or Redis is unreachable; the sender should retry.", "temporarily unavailable"
            ),
        },
    }


def _info(max_body_bytes: int) -> dict[str, Any]:
    return {
        "title": "fillpipe webhook receiver",
        "version": "1",
        "description": "Receives the provider's task callbacks. Checks run in this order: "
        f"body size (at most {max_body_bytes} bytes, else 413); the URL token, the "
        "webhook secret and the body signature on the raw bytes (any failure is the "
        "same 401); the content type (415); the body shape (400); the job (404).",
    }


# -- the operations --------------------------------------------------------------------


def _callback_operation(max_body_bytes: int, require_signature: bool) -> dict[str, Any]:
    return {
        "operationId": "providerCallback",
        "summary": "A provider callback for one job attempt",
        "parameters": _callback_parameters(require_signature),
        "requestBody": {"required": True, "content": _json_content("Callback")},
        "responses": _callback_responses(max_body_bytes),
    }


def _callback_parameters(require_signature: bool) -> list[dict[str, Any]]:
    signature = "HMAC-SHA256 of the raw body with the webhook secret, as `sha256=<hex>`. " + (
        "Required." if require_signature else "Verified whenever present."
    )
    return [
        {
            "name": "token",
            "in": "path",
            "required": True,
            "description": "Signed, expiring token naming batch, job and attempt (itsdangerous).",
            "schema": {"type": "string", "minLength": 1},
        },
        {
            "name": SECRET_HEADER,
            "in": "header",
            "required": True,
            "description": "The webhook secret sent with the submit, echoed.",
            "schema": {"type": "string"},
        },
        {
            "name": SIGNATURE_HEADER,
            "in": "header",
            "required": require_signature,
            "description": signature,
            "schema": {"type": "string", "pattern": "^sha256=[0-9a-f]{64}$"},
        },
    ]


def _callback_responses(max_body_bytes: int) -> dict[str, Any]:
    return {
        "200": _status_answer(
            "Accepted: recorded and a collect enqueued, or a duplicate, a running task "
            "or an older attempt acknowledged with nothing changed."
        ),
        "400": _detail(
            "Verified, but the body is not one of the provider's shapes.",
            "malformed callback body",
        ),
        "401": _detail(
            "The token, the secret or the signature did not verify (which one is never said).",
            "unauthorized",
        ),
        "404": _detail("The token names a job the ledger does not know.", "not found"),
        "405": _detail("Only POST is served here.", "method not allowed"),
        "413": _detail(f"The body is over {max_body_bytes} bytes.", "request body too large"),
        "415": _detail(
            "Verified, but the body is not `application/json` (charset utf-8 allowed).",
            "content type must be application/json",
        ),
        "503": _detail(
            "The ledger or the broker is unreachable; the provider should retry.",
            "temporarily unavailable",
        ),
    }


def _health_operation() -> dict[str, Any]:
    return {
        "operationId": "health",
        "summary": "200 when the ledger's Redis answers, else 503",
        "responses": {
            "200": _status_answer("Healthy."),
            "503": _detail("Redis does not answer.", "temporarily unavailable"),
        },
    }


def _status_answer(description: str) -> dict[str, Any]:
    """An answer of `{"status": "ok"}`."""
    return {"description": description, "content": _json_content("Status")}


def _detail(description: str, example: str) -> dict[str, Any]:
    """An answer of `{"detail": example}`."""
    return {
        "description": description,
        "content": {JSON_MEDIA_TYPE: {"schema": _ref("Detail"), "example": {"detail": example}}},
    }


def _json_content(schema_name: str) -> dict[str, Any]:
    return {JSON_MEDIA_TYPE: {"schema": _ref(schema_name)}}


def _ref(schema_name: str) -> dict[str, str]:
    return {"$ref": SCHEMAS_PATH + schema_name}


# -- the component schemas ---------------------------------------------------------------


def _component_schemas() -> dict[str, Any]:
    return {
        "Callback": {"oneOf": [_ref("WebhookShape"), _ref("ResultShape")]},
        "WebhookShape": _webhook_shape(),
        "ResultShape": _result_shape(),
        "Status": {
            "type": "object",
            "required": ["status"],
            "properties": {"status": {"const": "ok"}},
        },
        "Detail": {
            "type": "object",
            "required": ["detail"],
            "properties": {"detail": {"type": "string"}},
        },
    }


def _webhook_shape() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "The webhook shape; unknown fields are ignored.",
        "required": ["task_id", "status"],
        "properties": {
            "task_id": _task_id(),
            "status": _status_word(WEBHOOK_STATUS_EXAMPLES),
            "result": _result(),
        },
    }


def _result_shape() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "The get_result shape; unknown fields are ignored.",
        "required": ["id", "status"],
        "not": {"required": ["task_id"]},
        "properties": {
            "id": _task_id(),
            "status": _status_word(RESULT_STATUS_EXAMPLES),
            "result": _result(),
        },
    }


def _task_id() -> dict[str, Any]:
    return {
        "type": "string",
        "minLength": 1,
        "maxLength": TASK_ID_MAX_CHARS,
        "pattern": "^[A-Za-z0-9][A-Za-z0-9._:-]*$",
    }


def _status_word(examples: tuple[str, ...]) -> dict[str, Any]:
    return {
        "type": "string",
        "minLength": 1,
        "maxLength": STATUS_MAX_CHARS,
        "examples": list(examples),
    }


def _result() -> dict[str, Any]:
    return {
        "description": "What the provider says about the output; never trusted (the collect "
        "task reads the outcome from the provider).",
        "type": ["object", "null"],
        "properties": {
            "sample": {"type": "string"},
            "seed": {"type": ["integer", "null"]},
            "prompt": {"type": "string"},
            "start_time": {"type": "number"},
            "end_time": {"type": "number"},
            "duration": {"type": "number"},
        },
    }
