"""Finetune management and credits against the emulator over HTTP (both flavours, and
with its endpoints withdrawn), errors at the client's transport seam, and training
folders checked before anything is sent."""

import pickle
import time
import zipfile
from io import BytesIO

import httpx
import pytest

from pipeline.errors import (
    EndpointWithdrawn,
    InputError,
    KeyRejected,
    ProviderRejected,
    ProviderUnavailable,
)
from pipeline.finetunes import (
    FinetuneInfo,
    check_training_folder,
    credits,
    delete_finetune,
    finetune_details,
    my_finetunes,
    training_zip,
)
from pipeline.provider import ProviderClient, TaskStatus
from pipeline.secret import Secret
from tests.finetune_helpers import (
    CREDITS_A,
    CREDITS_B,
    KEY_A,
    KEY_B,
    emulator_process,
    write_images,
)

pytestmark = pytest.mark.timeout(90)

BASE = "https://api.us1.bfl.ai"
TRAINING_TIMEOUT_S = 30.0


@pytest.fixture(scope="module")
def withdrawn_url(tmp_path_factory):
    """An emulator that no longer offers any finetune endpoint, nor credits."""
    endpoints = "finetune,finetune_details,my_finetunes,delete_finetune,credits"
    with emulator_process(tmp_path_factory.mktemp("withdrawn"), withdrawn=endpoints) as url:
        yield url


def on(url, key=KEY_A, flavor="bfl"):
    return ProviderClient(url, Secret(key), flavor=flavor)


def mocked(status, body=None):
    transport = httpx.MockTransport(lambda request: httpx.Response(status, json=body))
    return ProviderClient(BASE, Secret("the-key"), transport=transport)


def wait_ready(client, finetune_id):
    deadline = time.monotonic() + TRAINING_TIMEOUT_S
    while (result := client.get_result(client.fallback_polling_url(finetune_id))).status in (
        TaskStatus.PENDING,
    ):
        assert time.monotonic() < deadline, "training did not end"
        time.sleep(0.1)
    return result


@pytest.mark.parametrize("flavor", ["bfl", "cometapi"])
def test_a_finetune_is_created_listed_described_and_deleted(emulator_url, tmp_path, flavor):
    write_images(tmp_path / "set", 2)
    archive, count = training_zip(tmp_path / "set")
    client = on(emulator_url, flavor=flavor)
    finetune_id = client.create_finetune(
        archive,
        comment="brand A",
        trigger_word="BRANDA",
        mode="product",
        iterations=150,
        finetune_type="lora",
    )
    assert count == 2
    pending = finetune_details(client, finetune_id)
    assert pending.status == "Pending"
    assert wait_ready(client, finetune_id).status is TaskStatus.READY
    assert finetune_id in my_finetunes(client)
    info = finetune_details(client, finetune_id)
    assert (info.id, info.comment, info.trigger_word, info.mode) == (
        finetune_id,
        "brand A",
        "BRANDA",
        "product",
    )
    assert (info.type, info.iterations, info.status) == ("lora", 150, "Ready")
    assert info.created_at
    delete_finetune(client, finetune_id)
    assert finetune_id not in my_finetunes(client)
    client.close()


def test_training_reports_progress_while_pending(emulator_url, tmp_path):
    write_images(tmp_path / "set", 1)
    client = on(emulator_url)
    finetune_id = client.create_finetune(
        training_zip(tmp_path / "set")[0], comment="c", trigger_word="T"
    )
    result = client.get_result(client.fallback_polling_url(finetune_id))
    assert result.status is TaskStatus.PENDING
    assert result.progress is not None
    assert 0.0 <= result.progress < 1.0


def test_each_key_sees_only_its_own_finetunes_and_balance(emulator_url, tmp_path):
    write_images(tmp_path / "set", 1)
    archive = training_zip(tmp_path / "set")[0]
    a, b = on(emulator_url, KEY_A), on(emulator_url, KEY_B, flavor="cometapi")
    id_a = a.create_finetune(archive, comment="a", trigger_word="A")
    id_b = b.create_finetune(archive, comment="b", trigger_word="B")
    assert id_a in my_finetunes(a)
    assert id_b not in my_finetunes(a)
    assert my_finetunes(b) == [id_b]
    with pytest.raises(ProviderRejected) as raised:
        finetune_details(b, id_a)
    assert raised.value.status_code == 404
    assert (credits(a), credits(b)) == (CREDITS_A, CREDITS_B)


def test_a_refused_key_is_key_rejected(emulator_url):
    with pytest.raises(KeyRejected):
        credits(on(emulator_url, "not-a-key"))


def test_an_unknown_finetune_is_rejected_not_withdrawn(emulator_url):
    with pytest.raises(ProviderRejected) as raised:
        delete_finetune(on(emulator_url), "no-such-finetune")
    assert raised.value.status_code == 404
    assert "no-such-finetune" in str(raised.value)


@pytest.mark.parametrize("flavor", ["bfl", "cometapi"])
def test_withdrawn_endpoints_say_so_with_their_path_and_status(withdrawn_url, tmp_path, flavor):
    write_images(tmp_path / "set", 1)
    client = on(withdrawn_url, flavor=flavor)
    prefix = "/v1" if flavor == "bfl" else "/flux/v1"
    calls = {
        f"POST {prefix}/finetune": lambda: client.create_finetune(
            training_zip(tmp_path / "set")[0], comment="c", trigger_word="T"
        ),
        f"GET {prefix}/my_finetunes": lambda: my_finetunes(client),
        f"GET {prefix}/finetune_details": lambda: finetune_details(client, "f1"),
        f"POST {prefix}/delete_finetune": lambda: delete_finetune(client, "f1"),
        f"GET {prefix}/credits": lambda: credits(client),
    }
    for request, call in calls.items():
        with pytest.raises(EndpointWithdrawn) as raised:
            call()
        assert raised.value.request == request
        assert raised.value.status_code == 404
        assert f"the provider at {withdrawn_url} no longer offers" in str(raised.value)
        assert f"({request} answered 404)" in str(raised.value)


@pytest.mark.parametrize("status", [405, 410])
def test_405_and_410_also_mean_withdrawn(status):
    with pytest.raises(EndpointWithdrawn) as raised:
        credits(mocked(status, {"detail": "Method Not Allowed"}))
    assert str(raised.value) == (
        f"the provider at {BASE} no longer offers the credits balance "
        f"(GET /v1/credits answered {status})"
    )


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        (404, {"detail": "Not Found"}, EndpointWithdrawn),
        (404, None, EndpointWithdrawn),
        (404, {"detail": "Finetune f1 not found"}, ProviderRejected),
        (401, {"detail": "Invalid key"}, KeyRejected),
        (403, {"detail": "Forbidden"}, KeyRejected),
        (502, None, ProviderUnavailable),
        (200, {"no": "credits"}, ProviderUnavailable),
    ],
)
def test_management_errors_at_the_transport_seam(status, body, error):
    with pytest.raises(error):
        finetune_details(mocked(status, body), "f1")


def test_endpoint_withdrawn_pickles_and_keeps_its_message():
    error = EndpointWithdrawn("finetune creation", "POST /v1/finetune", 404, BASE)
    copy = pickle.loads(pickle.dumps(error))
    assert str(copy) == str(error)
    assert (copy.what, copy.status_code) == ("finetune creation", 404)


def test_finetune_info_leaves_what_the_provider_omits_as_none():
    info = FinetuneInfo.from_details("f1", {"mode": "style", "iterations": "many"})
    assert info == FinetuneInfo(id="f1", mode="style")


def test_a_good_folder_zips_its_images_and_captions(tmp_path):
    write_images(tmp_path, 3)
    (tmp_path / "photo-00.txt").write_text("a mug on a table")
    (tmp_path / ".DS_Store").write_bytes(b"\0")
    archive, count = training_zip(tmp_path)
    names = zipfile.ZipFile(BytesIO(archive)).namelist()
    assert count == 3
    assert sorted(names) == ["photo-00.png", "photo-00.txt", "photo-01.png", "photo-02.png"]


def problems(folder):
    return [(p.file, p.message) for p in check_training_folder(folder).problems]


def test_an_empty_folder_and_one_with_21_images_are_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    assert problems(tmp_path / "empty") == [(str(tmp_path / "empty"), "holds no training images")]
    write_images(tmp_path / "many", 21, size_px=(256, 256))
    ((_, message),) = problems(tmp_path / "many")
    assert "holds 21 images, more than the 20" in message
    assert "move 1 of them out" in str(check_training_folder(tmp_path / "many").problems[0])


def test_every_bad_file_is_listed_with_how_to_fix_it(tmp_path):
    write_images(tmp_path, 1)
    write_images(tmp_path / "nested", 1)
    (tmp_path / "notes.pdf").write_bytes(b"%PDF-1.4")
    (tmp_path / "broken.jpg").write_bytes(b"not really a jpeg")
    (tmp_path / "orphan.txt").write_text("a caption with no image")
    write_images(tmp_path / "small", 1, size_px=(512, 255))
    (tmp_path / "small" / "photo-00.png").rename(tmp_path / "small.png")
    with open(tmp_path / "huge.png", "wb") as huge:
        huge.truncate(51 * 1024 * 1024)
    found = {problem.file: str(problem) for problem in check_training_folder(tmp_path).problems}
    assert sorted(found) == [
        "broken.jpg",
        "huge.png",
        "nested",
        "notes.pdf",
        "orphan.txt",
        "small",
        "small.png",
    ]
    assert "cannot be read as an image" in found["broken.jpg"]
    assert "over the 50 MB limit" in found["huge.png"]
    assert "is not a .jpg/.jpeg/.png/.webp image" in found["notes.pdf"]
    assert "512x255 px, under 256 px on its short side" in found["small.png"]
    assert "caption file with no image" in found["orphan.txt"]
    with pytest.raises(InputError, match="has 7 problems"):
        training_zip(tmp_path)
