"""Every 422 a submit can get, in the provider's FastAPI form, and the values just inside."""

from typing import Any

import pytest
from PIL import Image
from starlette.testclient import TestClient

from tests.emulator.helpers import (
    AUTH,
    FILL,
    FILL_FINETUNED,
    OTHER_AUTH,
    b64,
    box_mask,
    encoded,
    fill_body,
    finetune_body,
    photo,
    train_finetune,
)


def issues(response: Any) -> list[tuple[list[Any], str]]:
    assert response.status_code == 422, response.text
    return [(issue["loc"], issue["type"]) for issue in response.json()["detail"]]


def only_issue(response: Any) -> tuple[list[Any], str]:
    [issue] = issues(response)
    return issue


@pytest.fixture
def finetune_id(client: TestClient) -> str:
    return train_finetune(client)


OUT_OF_RANGE = [
    ("steps", 14, "greater_than_equal"),
    ("steps", 51, "less_than_equal"),
    ("guidance", 1.49, "greater_than_equal"),
    ("guidance", 100.01, "less_than_equal"),
    ("safety_tolerance", -1, "greater_than_equal"),
    ("safety_tolerance", 7, "less_than_equal"),
    ("finetune_strength", -0.01, "greater_than_equal"),
    ("finetune_strength", 2.01, "less_than_equal"),
]
IN_RANGE = [
    ("steps", 15),
    ("steps", 50),
    ("guidance", 1.5),
    ("guidance", 100),
    ("safety_tolerance", 0),
    ("safety_tolerance", 6),
    ("finetune_strength", 0),
    ("finetune_strength", 2),
    ("output_format", "jpeg"),
    ("output_format", "png"),
    ("output_format", "webp"),
    ("seed", None),
    ("seed", -5),
    ("mask", None),
    ("webhook_url", "https://hooks.example/" + "a" * (2083 - 22)),
]
WRONG_TYPES = [
    ("steps", "50", "int_type"),
    ("steps", 50.0, "int_type"),
    ("steps", True, "int_type"),
    ("steps", None, "int_type"),
    ("guidance", "60", "float_type"),
    ("guidance", False, "float_type"),
    ("prompt", 7, "string_type"),
    ("prompt_upsampling", "yes", "bool_type"),
    ("seed", 1.5, "int_type"),
    ("output_format", "gif", "literal_error"),
    ("output_format", "PNG", "literal_error"),
    ("image", 42, "string_type"),
    ("mask", 42, "string_type"),
    ("finetune_id", 42, "string_type"),
    ("webhook_url", "", "url_parsing"),
    ("webhook_url", "/relative/path", "url_parsing"),
    ("webhook_url", "ftp://hooks.example/x", "url_scheme"),
    ("webhook_url", "https://hooks.example/" + "a" * (2084 - 22), "url_too_long"),
    ("webhook_url", 5, "url_type"),
    ("webhook_secret", 5, "string_type"),
]


@pytest.mark.parametrize(("name", "value", "kind"), OUT_OF_RANGE + WRONG_TYPES)
def test_a_bad_field_is_a_422_naming_it(
    client: TestClient, finetune_id: str, name: str, value: Any, kind: str
) -> None:
    body = {**fill_body(finetune_id=finetune_id), name: value}

    response = client.post(FILL_FINETUNED, json=body, headers=AUTH)

    assert only_issue(response) == (["body", name], kind)


@pytest.mark.parametrize(("name", "value"), IN_RANGE)
def test_values_just_inside_are_accepted(
    client: TestClient, finetune_id: str, name: str, value: Any
) -> None:
    image = Image.new("RGBA", (8, 8), (0, 0, 0, 0))  # its alpha stands in for a null mask
    body = {**fill_body(finetune_id=finetune_id, image=b64(image), mask=None), name: value}

    response = client.post(FILL_FINETUNED, json=body, headers=AUTH)

    assert response.status_code == 200, response.text


@pytest.mark.parametrize("name", ["image", "finetune_id"])
def test_required_fields(client: TestClient, finetune_id: str, name: str) -> None:
    body = fill_body(finetune_id=finetune_id)
    del body[name]

    response = client.post(FILL_FINETUNED, json=body, headers=AUTH)

    assert only_issue(response) == (["body", name], "missing")


def test_every_bad_field_is_listed_at_once(client: TestClient) -> None:
    body = fill_body(steps=5, guidance="high", output_format="bmp", mask="%%%")

    response = client.post(FILL_FINETUNED, json=body, headers=AUTH)

    assert sorted(issues(response)) == sorted(
        [
            (["body", "finetune_id"], "missing"),
            (["body", "steps"], "greater_than_equal"),
            (["body", "guidance"], "float_type"),
            (["body", "output_format"], "literal_error"),
            (["body", "mask"], "value_error"),
        ]
    )


def test_messages_use_the_provider_wording(client: TestClient) -> None:
    response = client.post(FILL, json=fill_body(steps=51, output_format="gif"), headers=AUTH)

    assert response.json() == {
        "detail": [
            {
                "loc": ["body", "steps"],
                "msg": "Input should be less than or equal to 50",
                "type": "less_than_equal",
            },
            {
                "loc": ["body", "output_format"],
                "msg": "Input should be 'jpeg', 'png' or 'webp'",
                "type": "literal_error",
            },
        ]
    }


def test_unknown_fields_are_ignored(client: TestClient) -> None:
    response = client.post(FILL, json=fill_body(aspect_ratio="16:9", extra={"a": 1}), headers=AUTH)

    assert response.status_code == 200


def test_the_plain_fill_takes_no_finetune(client: TestClient) -> None:
    response = client.post(
        FILL, json=fill_body(finetune_id="ignored", finetune_strength=9), headers=AUTH
    )

    assert response.status_code == 200


@pytest.mark.parametrize("raw", [b"{not json", b"", b"NaN", b'{"steps": Infinity}'])
def test_a_body_that_is_not_json(client: TestClient, raw: bytes) -> None:
    response = client.post(FILL, content=raw, headers=AUTH)

    assert only_issue(response)[1] == "json_invalid"


@pytest.mark.parametrize("raw", [b"[]", b'"image"', b"null"])
def test_a_body_that_is_not_an_object(client: TestClient, raw: bytes) -> None:
    response = client.post(FILL, content=raw, headers=AUTH)

    assert only_issue(response) == (["body"], "model_attributes_type")


def test_a_number_too_large_for_a_float(client: TestClient) -> None:
    response = client.post(FILL, content=b'{"image": "", "guidance": 1e999}', headers=AUTH)

    assert (["body", "guidance"], "finite_number") in issues(response)


@pytest.mark.parametrize("name", ["image", "mask"])
@pytest.mark.parametrize("text", ["not base64!", "aGVsbG8", "data:image/png;base64,AAAA", "é"])
def test_undecodable_base64(client: TestClient, name: str, text: str) -> None:
    response = client.post(FILL, json=fill_body(**{name: text}), headers=AUTH)

    assert only_issue(response) == (["body", name], "value_error")


@pytest.mark.parametrize("name", ["image", "mask"])
def test_bytes_that_are_not_an_image(client: TestClient, name: str) -> None:
    truncated = encoded(photo())[:100]
    for data in (b"hello, world", truncated):
        response = client.post(FILL, json=fill_body(**{name: b64(data)}), headers=AUTH)

        assert only_issue(response) == (["body", name], "value_error")


def test_a_mask_of_another_size(client: TestClient) -> None:
    response = client.post(FILL, json=fill_body(mask=b64(box_mask(65, 48))), headers=AUTH)

    assert response.json()["detail"] == [
        {
            "loc": ["body", "mask"],
            "msg": "Mask size 65x48 does not match image size 64x48",
            "type": "value_error",
        }
    ]


def test_no_mask_and_no_alpha(client: TestClient) -> None:
    response = client.post(FILL, json=fill_body(mask=None), headers=AUTH)

    assert only_issue(response) == (["body", "mask"], "missing")


def test_an_unknown_finetune(client: TestClient) -> None:
    response = client.post(
        FILL_FINETUNED, json=fill_body(finetune_id="no-such-finetune"), headers=AUTH
    )

    assert only_issue(response) == (["body", "finetune_id"], "value_error")


def test_another_keys_finetune_is_unknown(client: TestClient, finetune_id: str) -> None:
    response = client.post(
        FILL_FINETUNED, json=fill_body(finetune_id=finetune_id), headers=OTHER_AUTH
    )

    assert only_issue(response) == (["body", "finetune_id"], "value_error")


@pytest.mark.timeout(30)
def test_a_finetune_still_training(make_client) -> None:
    client = make_client(latency_base_s=30)
    pending = client.post("/v1/finetune", json=finetune_body(), headers=AUTH).json()

    response = client.post(
        FILL_FINETUNED, json=fill_body(finetune_id=pending["finetune_id"]), headers=AUTH
    )

    [issue] = response.json()["detail"]
    assert issue["loc"] == ["body", "finetune_id"]
    assert issue["msg"].endswith("is not ready (status Pending)")


def test_a_get_result_without_id(client: TestClient) -> None:
    response = client.get("/v1/get_result", headers=AUTH)

    assert only_issue(response) == (["query", "id"], "missing")
