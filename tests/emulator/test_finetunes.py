"""Finetunes: training, management, and their effect on fills."""

import io
import math

import numpy as np
import pytest
from PIL import Image
from starlette.testclient import TestClient

from emulator.inpaint import EDGE_BLEND_PX
from tests.emulator.helpers import (
    AUTH,
    FILL_FINETUNED,
    OTHER_AUTH,
    Clock,
    b64,
    brand_images,
    download,
    finetune_body,
    inner_mask,
    run_fill,
    train_finetune,
    training_zip,
    wait_for_final,
    zip_b64,
)

pytestmark = pytest.mark.timeout(60)


def create(client: TestClient, **overrides: object) -> dict:
    response = client.post("/v1/finetune", json=finetune_body(**overrides), headers=AUTH)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.timeout(30)
def test_training_is_pending_then_ready(make_client) -> None:
    client = make_client(latency_base_s=1.0)
    finetune_id = create(client)["finetune_id"]

    pending = client.get(f"/v1/get_result?id={finetune_id}", headers=AUTH).json()
    ready = wait_for_final(client, f"/v1/get_result?id={finetune_id}")

    assert pending["status"] == "Pending"
    assert ready["status"] == "Ready"


def test_details_report_the_settings_and_what_was_learned(client: TestClient, clock: Clock) -> None:
    finetune_id = train_finetune(client, trigger_word="BRND", iterations=100)

    details = client.get(f"/v1/finetune_details?finetune_id={finetune_id}", headers=AUTH)

    assert details.status_code == 200
    reported = details.json()["finetune_details"]
    assert reported["finetune_id"] == finetune_id
    assert reported["status"] == "Ready"
    assert reported["finetune_comment"] == "brand"
    assert reported["mode"] == "style"
    assert reported["trigger_word"] == "BRND"
    assert reported["iterations"] == 100
    assert reported["finetune_type"] == "full"
    assert reported["image_count"] == 2
    assert reported["style"]["palette"][:2] == ["#dc1e28", "#fad214"]


def test_details_report_the_default_settings(client: TestClient) -> None:
    finetune_id = train_finetune(client)

    reported = client.get(f"/v1/finetune_details?finetune_id={finetune_id}", headers=AUTH).json()[
        "finetune_details"
    ]

    assert (reported["iterations"], reported["finetune_type"], reported["trigger_word"]) == (
        300,
        "full",
        "TOK",
    )
    assert reported["created_at"] == "2030-03-17T17:46:40+00:00"


@pytest.mark.parametrize("mode", ["general", "character", "style", "product"])
def test_every_mode_and_a_lora_are_accepted(client: TestClient, mode: str) -> None:
    finetune_id = train_finetune(client, mode=mode, finetune_type="lora", iterations=1000)

    reported = client.get(f"/v1/finetune_details?finetune_id={finetune_id}", headers=AUTH).json()[
        "finetune_details"
    ]

    assert (reported["mode"], reported["finetune_type"], reported["iterations"]) == (
        mode,
        "lora",
        1000,
    )


def test_list_and_delete(client: TestClient, clock: Clock) -> None:
    first = train_finetune(client)
    second = train_finetune(client)

    listed = client.get("/v1/my_finetunes", headers=AUTH).json()
    deleted = client.post("/v1/delete_finetune", json={"finetune_id": first}, headers=AUTH)

    assert listed == {"finetunes": [first, second]}
    assert deleted.status_code == 200
    assert deleted.json() == {
        "status": "success",
        "message": f"Finetune {first} deleted",
        "deleted_finetune_id": first,
        "timestamp": "2030-03-17T17:46:40+00:00",
    }
    assert client.get("/v1/my_finetunes", headers=AUTH).json() == {"finetunes": [second]}
    assert client.get(f"/v1/finetune_details?finetune_id={first}", headers=AUTH).status_code == 404


def test_finetunes_belong_to_their_key(client: TestClient) -> None:
    finetune_id = train_finetune(client)

    assert client.get("/v1/my_finetunes", headers=OTHER_AUTH).json() == {"finetunes": []}
    assert (
        client.get(
            f"/v1/finetune_details?finetune_id={finetune_id}", headers=OTHER_AUTH
        ).status_code
        == 404
    )
    assert (
        client.post(
            "/v1/delete_finetune", json={"finetune_id": finetune_id}, headers=OTHER_AUTH
        ).status_code
        == 404
    )


def test_deleting_an_unknown_finetune_is_404(client: TestClient) -> None:
    response = client.post("/v1/delete_finetune", json={"finetune_id": "nope"}, headers=AUTH)

    assert response.status_code == 404
    assert response.json() == {"detail": "Finetune nope not found"}


def test_management_requests_are_validated(client: TestClient) -> None:
    assert client.post("/v1/delete_finetune", json={}, headers=AUTH).status_code == 422
    assert client.get("/v1/finetune_details", headers=AUTH).status_code == 422


def test_a_deleted_finetune_cannot_fill(client: TestClient) -> None:
    finetune_id = train_finetune(client)
    client.post("/v1/delete_finetune", json={"finetune_id": finetune_id}, headers=AUTH)

    response = client.post(FILL_FINETUNED, json={"finetune_id": finetune_id}, headers=AUTH)

    assert ["body", "finetune_id"] in [issue["loc"] for issue in response.json()["detail"]]


def test_captions_and_resource_forks_are_ignored(client: TestClient) -> None:
    extra = {"image_0.txt": b"a caption", "__MACOSX/._image_0.png": b"junk", "notes/": b""}
    finetune_id = train_finetune(client, file_data=training_zip(*brand_images(), extra=extra))

    details = client.get(f"/v1/finetune_details?finetune_id={finetune_id}", headers=AUTH)

    assert details.json()["finetune_details"]["image_count"] == 2


@pytest.mark.parametrize(
    ("file_data", "message"),
    [
        ("%%%", "Invalid base64"),
        (b64(b"not a zip"), "Not a readable zip"),
        (zip_b64({"caption.txt": b"no images here"}), "holds 0"),
        (training_zip(*[Image.new("RGB", (4, 4))] * 21), "holds 21"),
        (training_zip(extra={"broken.png": b"not a png"}), "broken.png"),
    ],
)
def test_a_bad_training_zip_is_a_422(client: TestClient, file_data: str, message: str) -> None:
    response = client.post("/v1/finetune", json=finetune_body(file_data=file_data), headers=AUTH)

    [issue] = response.json()["detail"]
    assert response.status_code == 422
    assert issue["loc"] == ["body", "file_data"]
    assert message in issue["msg"]


@pytest.mark.parametrize(
    ("name", "value", "kind"),
    [
        ("mode", "portrait", "literal_error"),
        ("iterations", 99, "greater_than_equal"),
        ("iterations", 1001, "less_than_equal"),
        ("learning_rate", 0.0051, "less_than_equal"),
        ("lora_rank", 8, "literal_error"),
        ("priority", "fast", "literal_error"),
        ("finetune_type", "partial", "literal_error"),
        ("iterations", 300.0, "int_type"),
        ("finetune_comment", None, "string_type"),
    ],
)
def test_bad_training_settings_are_a_422(
    client: TestClient, name: str, value: object, kind: str
) -> None:
    response = client.post("/v1/finetune", json={**finetune_body(), name: value}, headers=AUTH)

    assert [(issue["loc"], issue["type"]) for issue in response.json()["detail"]] == [
        (["body", name], kind)
    ]


def test_required_training_fields(client: TestClient) -> None:
    response = client.post("/v1/finetune", json={}, headers=AUTH)

    assert sorted(issue["loc"][1] for issue in response.json()["detail"]) == [
        "file_data",
        "finetune_comment",
        "mode",
    ]


def test_a_strong_finetune_paints_in_its_palette(client: TestClient) -> None:
    finetune_id = train_finetune(client)

    result = run_fill(client, FILL_FINETUNED, finetune_id=finetune_id, finetune_strength=2)

    output = np.array(Image.open(io.BytesIO(download(client, result))).convert("RGB"))
    palette = np.array([(220, 30, 40), (250, 210, 20)])
    # Beyond the edge fade (EDGE_BLEND_PX in from the outermost repainted pixels), where
    # the style has its full weight.
    repainted = output[inner_mask(math.ceil(EDGE_BLEND_PX) + 1)].astype(int)
    distance = np.abs(repainted[:, None, :] - palette[None, :, :]).sum(axis=2).min(axis=1)
    assert np.mean(distance < 60) > 0.8


def test_finetune_strength_changes_the_result(client: TestClient) -> None:
    finetune_id = train_finetune(client)

    weak, strong = (
        download(
            client,
            run_fill(client, FILL_FINETUNED, finetune_id=finetune_id, finetune_strength=strength),
        )
        for strength in (0.2, 1.5)
    )

    assert weak != strong
