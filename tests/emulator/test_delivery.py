"""Signed, expiring delivery URLs."""

from urllib.parse import parse_qs, urlsplit

import pytest
from starlette.testclient import TestClient

from emulator.delivery import DeliverySigner
from emulator.errors import Forbidden
from tests.emulator.helpers import AUTH, Clock, run_fill


def query(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


@pytest.fixture
def signer(clock: Clock) -> DeliverySigner:
    return DeliverySigner("signing-key", ttl_s=600, clock=clock)


def test_a_signed_url_verifies_until_it_expires(signer: DeliverySigner, clock: Clock) -> None:
    url = signer.url("http://emulator", "task-1", "sample.png")
    signed = query(url)

    assert urlsplit(url).path == "/delivery/task-1/sample.png"
    assert signed["exp"] == str(int(clock.now + 600))
    signer.verify("task-1", "sample.png", signed["exp"], signed["sig"])
    clock.advance(600)
    signer.verify("task-1", "sample.png", signed["exp"], signed["sig"])
    clock.advance(1)
    with pytest.raises(Forbidden, match="expired"):
        signer.verify("task-1", "sample.png", signed["exp"], signed["sig"])


@pytest.mark.parametrize(
    ("task_id", "filename", "exp", "sig"),
    [
        ("task-2", "sample.png", None, None),
        ("task-1", "sample.jpg", None, None),
        ("task-1", "sample.png", "1", None),
        ("task-1", "sample.png", None, "0" * 64),
        ("task-1", "sample.png", "soon", None),
        ("task-1", "sample.png", None, "é"),
        ("task-1", "sample.png", "", ""),
    ],
)
def test_nothing_signed_can_be_changed(
    signer: DeliverySigner, task_id: str, filename: str, exp: str | None, sig: str | None
) -> None:
    signed = query(signer.url("http://emulator", "task-1", "sample.png"))

    with pytest.raises(Forbidden, match="Signature"):
        signer.verify(
            task_id,
            filename,
            signed["exp"] if exp is None else exp,
            signed["sig"] if sig is None else sig,
        )


def test_another_key_signs_differently(clock: Clock) -> None:
    ours = DeliverySigner("ours", ttl_s=600, clock=clock)
    theirs = DeliverySigner("theirs", ttl_s=600, clock=clock)
    signed = query(theirs.url("http://emulator", "task-1", "sample.png"))

    with pytest.raises(Forbidden):
        ours.verify("task-1", "sample.png", signed["exp"], signed["sig"])


def test_a_tampered_signature_is_403(client: TestClient) -> None:
    url = run_fill(client)["result"]["sample"]
    tampered = url[:-1] + ("0" if url[-1] != "0" else "1")

    response = client.get(tampered)

    assert response.status_code == 403
    assert response.json() == {"detail": "Signature does not match"}


def test_a_changed_extension_is_403(client: TestClient) -> None:
    url = run_fill(client)["result"]["sample"]

    assert client.get(url.replace("sample.png", "sample.jpg")).status_code == 403


def test_an_expired_url_is_403_and_get_result_signs_a_fresh_one(
    client: TestClient, clock: Clock
) -> None:
    result = run_fill(client)
    clock.advance(601)

    expired = client.get(result["result"]["sample"])
    fresh = client.get(f"/v1/get_result?id={result['id']}", headers=AUTH).json()

    assert expired.status_code == 403
    assert expired.json() == {"detail": "Request has expired"}
    assert fresh["result"]["sample"] != result["result"]["sample"]
    assert client.get(fresh["result"]["sample"]).status_code == 200


def test_a_signed_url_of_a_forgotten_task_is_404(make_client, clock: Clock) -> None:
    client = make_client(task_ttl_s=60, delivery_ttl_s=600)
    url = run_fill(client)["result"]["sample"]
    clock.advance(61)

    assert client.get(url).status_code == 404
