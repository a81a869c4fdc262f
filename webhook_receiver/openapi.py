"""The receiver's OpenAPI 3.1 description, served at `GET /openapi.json`.

Written by hand so that it says exactly what the receiver does: the callback route with
its token, both provider body shapes, the two headers and every answer it gives.
"""

from __future__ import annotations

from typing import Any

from pipeline.signing import SECRET_HEADER, SIGNATURE_HEADER


def _detail(description: str, example: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            "application/json": {
                "schema": {"$ref": "#/components/schemas/Detail"},
                "example": {"detail": example},
            }
        },
    }


_OK = {
    "description": "Accepted: recorded and a collect enqueued, or a duplicate, a running task "
    "or an older attempt acknowledged with nothing changed.",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Status"}}},
}

_RESULT = {
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

_TASK_ID = {
    "type": "string",
    "minLength": 1,
    "maxLength": 200,
    "pattern": "^[A-Za-z0-9][A-Za-z0-9._:-]*$",
}


def openapi_schema(*, max_body_bytes: int, require_signature: bool) -> dict[str, Any]:
    """The description of the app built with these settings."""
    signature = "HMAC-SHA256 of the raw body with the webhook secret, as `sha256=<hex>`. " + (
        "Required." if require_signature else "Verified whenever present."
    )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "fillpipe webhook receiver",
            "version": "1",
            "description": "Receives the provider's task callbacks. Checks run in this order: "
            f"body size (at most {max_body_bytes} bytes, else 413); the URL token, the "
            "webhook secret and the body signature on the raw bytes (any failure is the "
            "same 401); the content type (415); the body shape (400); the job (404).",
        },
        "paths": {
            "/v1/callbacks/bfl/{token}": {
                "post": {
                    "operationId": "providerCallback",
                    "summary": "A provider callback for one job attempt",
                    "parameters": [
                        {
                            "name": "token",
                            "in": "path",
                            "required": True,
                            "description": "Signed, expiring token naming batch, job and "
                            "attempt (itsdangerous).",
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
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/Callback"}
                            }
                        },
                    },
                    "responses": {
                        "200": _OK,
                        "400": _detail(
                            "Verified, but the body is not one of the provider's shapes.",
                            "malformed callback body",
                        ),
                        "401": _detail(
                            "The token, the secret or the signature did not verify (which one "
                            "is never said).",
                            "unauthorized",
                        ),
                        "404": _detail(
                            "The token names a job the ledger does not know.", "not found"
                        ),
                        "405": _detail("Only POST is served here.", "method not allowed"),
                        "413": _detail(
                            f"The body is over {max_body_bytes} bytes.", "request body too large"
                        ),
                        "415": _detail(
                            "Verified, but the body is not `application/json` (charset utf-8 "
                            "allowed).",
                            "content type must be application/json",
                        ),
                        "503": _detail(
                            "The ledger or the broker is unreachable; the provider should retry.",
                            "temporarily unavailable",
                        ),
                    },
                }
            },
            "/healthz": {
                "get": {
                    "operationId": "health",
                    "summary": "200 when the ledger's Redis answers, else 503",
                    "responses": {
                        "200": {
                            "description": "Healthy.",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Status"}
                                }
                            },
                        },
                        "503": _detail("Redis does not answer.", "temporarily unavailable"),
                    },
                }
            },
        },
        "components": {
            "schemas": {
                "Callback": {
                    "oneOf": [
                        {"$ref": "#/components/schemas/WebhookShape"},
                        {"$ref": "#/components/schemas/ResultShape"},
                    ]
                },
                "WebhookShape": {
                    "type": "object",
                    "description": "The webhook shape; unknown fields are ignored.",
                    "required": ["task_id", "status"],
                    "properties": {
                        "task_id": _TASK_ID,
                        "status": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": 64,
                            "examples": ["SUCCESS", "processing", "FAILED", "Content Moderated"],
                        },
                        "result": _RESULT,
                    },
                },
                "ResultShape": {
                    "type": "object",
                    "description": "The get_result shape; unknown fields are ignored.",
                    "required": ["id", "status"],
                    "not": {"required": ["task_id"]},
                    "properties": {
                        "id": _TASK_ID,
                        "status": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": 64,
                            "examples": [
                                "Ready",
                                "Pending",
                                "Error",
                                "Request Moderated",
                                "Content Moderated",
                                "Task not found",
                            ],
                        },
                        "result": _RESULT,
                    },
                },
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
        },
    }
