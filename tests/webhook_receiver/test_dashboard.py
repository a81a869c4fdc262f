"""The dashboard app under Starlette's TestClient, on a real Valkey and S3 server: the token
check, its pages and JSON, previews read from S3, retries."""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Iterator

import pytest
from PIL import Image
from starlette.testclient import TestClient

from fillpipe.ports import free_ports
from pipeline.balances import AccountBalance
from pipeline.ledger import Ledger, PoolLimits, redis_client
from pipeline.secret import Secret
from pipeline.settings import Settings
from pipeline.states import JobState
from pipeline.storage import S3Uri, Storage, make_s3_client
from pipeline.thumbnails import THUMBNAIL_PX, Thumbnails
from tests.ledger_jobs import FAILED_ERROR, end_dispatched, make_batch
from webhook_receiver.dashboard import DashboardSources, create_app
from webhook_receiver.dashboard.auth import SESSION_COOKIE

pytestmark = pytest.mark.timeout(60)

TOKEN = "dashboard-token-" + "x" * 24
BEARER = {"Authorization": f"Bearer {TOKEN}"}
SLOTS = 2


@pytest.fixture
def storage(s3_env, valkey_url) -> Storage:
    return Storage.from_settings(
        Settings.from_environ(
            {
                **s3_env,
                "FILLPIPE_REDIS_URL": valkey_url,
                "FILLPIPE_SIGNING_KEY": "s" * 40,
                "FILLPIPE_PROVIDER_URL": "http://127.0.0.1:9",
                "FILLPIPE_PROVIDER_KEY": "unused",
            }
        )
    )


@pytest.fixture
def ledger(valkey_url) -> Iterator[Ledger]:
    own = Ledger(
        redis_client(valkey_url),
        pools={"brand": PoolLimits(SLOTS)},
        prefix=f"dash-{uuid.uuid4().hex[:12]}:",
    )
    yield own
    own.close()


@pytest.fixture
def client(ledger: Ledger, storage: Storage) -> Iterator[TestClient]:
    sources = DashboardSources(
        ledger=ledger,
        thumbnails=Thumbnails(storage),
        flavors={"brand": "cometapi"},
        read_balances=lambda: [AccountBalance("brand", "cometapi", 1234.0)],
    )
    with TestClient(create_app(sources, token=Secret(TOKEN)), follow_redirects=False) as client:
        yield client


def a_png(size: tuple[int, int] = (640, 480)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (20, 120, 200)).save(out, "PNG")
    return out.getvalue()


def batch_with_inputs(ledger: Ledger, storage: Storage, jobs: int) -> str:
    """A batch whose jobs' images are real PNGs in S3."""
    batch_id = f"d{uuid.uuid4().hex[:10]}"
    for index in range(jobs):
        uri = S3Uri.parse(f"s3://fillpipe/inputs/{batch_id}/{index}.png")
        storage.write(uri, a_png(), content_type="image/png")
    image_uri = f"s3://fillpipe/inputs/{batch_id}/{{index}}.png"
    make_batch(ledger, batch_id, jobs, image_uri=image_uri, account="brand")
    return batch_id


@pytest.mark.parametrize(
    "path", ["/", "/batches/x", "/api/batches", "/api/accounts", "/static/live.js"]
)
def test_without_the_token_every_page_and_api_answers_401(client: TestClient, path: str):
    assert client.get(path).status_code == 401
    assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get(path, params={"token": "wrong"}).status_code == 401
    assert client.get(path, headers=BEARER).status_code in (200, 404)


def test_api_refusals_say_how_to_authenticate(client: TestClient):
    answer = client.get("/api/batches")
    assert "Bearer" in answer.json()["error"]
    assert answer.headers["www-authenticate"] == "Bearer"
    assert client.post("/api/batches/x/retry").status_code == 401


def test_health_needs_no_token(client: TestClient):
    assert client.get("/healthz").json() == {"status": "ok"}


def test_the_token_in_the_address_sets_a_session_and_leaves_the_address(client: TestClient):
    signed_in = client.get("/batches/b1", params={"token": TOKEN, "page": "2"})

    assert signed_in.status_code == 303
    assert signed_in.headers["location"] == "/batches/b1?page=2"
    cookie = signed_in.headers["set-cookie"]
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()
    assert TOKEN not in cookie
    assert client.get("/api/batches").status_code == 200


def test_a_session_cannot_post_from_another_site(client: TestClient, ledger, storage):
    batch_id = batch_with_inputs(ledger, storage, 2)
    end_dispatched(ledger, batch_id, JobState.FAILED)
    client.get("/", params={"token": TOKEN})

    foreign = client.post(f"/batches/{batch_id}/retry", headers={"Origin": "https://evil.test"})
    own = client.post(f"/batches/{batch_id}/retry", headers={"Origin": "http://testserver"})

    assert foreign.status_code == 401
    assert own.status_code == 303
    assert own.headers["location"] == f"/batches/{batch_id}?retried=2"


def wait_for_balances(client: TestClient) -> None:
    """Until the app has read the balances (in the background, as it starts)."""
    deadline = time.monotonic() + 10
    while (
        client.get("/api/accounts", headers=BEARER).json()["accounts"][0]["balance_credits"] is None
    ):
        assert time.monotonic() < deadline, "the balances were never read"
        time.sleep(0.05)


def test_the_batch_list_shows_progress_cost_and_accounts(client: TestClient, ledger, storage):
    batch_id = batch_with_inputs(ledger, storage, 5)
    end_dispatched(ledger, batch_id, JobState.STORED)
    wait_for_balances(client)

    page = client.get("/", headers=BEARER)

    assert page.status_code == 200
    assert f'href="/batches/{batch_id}"' in page.text
    assert "2/5" in page.text  # two slots: two jobs ended
    assert "$12.34" in page.text  # the account's balance, read in the background
    assert "cometapi" in page.text
    assert page.headers["server-timing"].startswith("app;dur=")
    assert page.headers["cache-control"] == "no-store"
    assert "default-src 'self'" in page.headers["content-security-policy"]


def test_a_batch_page_shows_its_jobs_with_previews_and_errors(client: TestClient, ledger, storage):
    batch_id = batch_with_inputs(ledger, storage, 3)
    end_dispatched(ledger, batch_id, JobState.FAILED)

    page = client.get(f"/batches/{batch_id}", headers=BEARER)

    assert page.status_code == 200
    assert page.text.count(f"/batches/{batch_id}/thumbs/image?job=job-") == 3
    assert FAILED_ERROR in page.text
    assert "Retry 2 failed jobs" in page.text
    preview = client.get(f"/batches/{batch_id}/thumbs/image?job=job-000&v=1", headers=BEARER)
    assert preview.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(preview.content)).size) == THUMBNAIL_PX
    assert preview.headers["cache-control"].startswith("private")


def test_previews_of_what_does_not_exist_are_404(client: TestClient, ledger, storage):
    batch_id = batch_with_inputs(ledger, storage, 1)
    base = f"/batches/{batch_id}/thumbs"
    assert client.get(f"{base}/output?job=job-000", headers=BEARER).status_code == 404
    assert client.get(f"{base}/mask?job=job-000", headers=BEARER).status_code == 404
    assert client.get(f"{base}/image?job=nope", headers=BEARER).status_code == 404
    assert client.get(f"{base}/secret?job=job-000", headers=BEARER).status_code == 404
    make_batch(ledger, "gone", 1, image_uri="s3://fillpipe/missing/{index}.png", account="brand")
    assert client.get("/batches/gone/thumbs/image?job=job-000", headers=BEARER).status_code == 404


def test_an_unknown_batch_is_404(client: TestClient):
    assert client.get("/batches/nope", headers=BEARER).status_code == 404
    assert client.get("/api/batches/nope", headers=BEARER).status_code == 404
    assert client.post("/api/batches/nope/retry", headers=BEARER).status_code == 404


def test_the_api_pages_a_batch_and_lists_failed_jobs(client: TestClient, ledger, storage):
    batch_id = batch_with_inputs(ledger, storage, 6)
    end_dispatched(ledger, batch_id, JobState.FAILED)

    listing = client.get("/api/batches", headers=BEARER).json()
    failed = client.get(f"/api/batches/{batch_id}?failed=1", headers=BEARER).json()

    assert listing["batches"][0]["batch"] == batch_id
    assert listing["batches"][0]["counts"]["failed"] == SLOTS
    assert [job["id"] for job in failed["jobs"]] == ["job-000", "job-001"]
    assert failed["jobs"][0]["error"] == FAILED_ERROR
    assert failed["jobs"][0]["account"] == "brand"
    wait_for_balances(client)
    accounts = client.get("/api/accounts", headers=BEARER).json()["accounts"]
    assert accounts[0]["balance_credits"] == 1234.0


def test_retrying_one_job_then_the_rest(client: TestClient, ledger, storage):
    batch_id = batch_with_inputs(ledger, storage, 4)
    end_dispatched(ledger, batch_id, JobState.FAILED)
    end_dispatched(ledger, batch_id, JobState.FAILED)

    one = client.post(f"/api/batches/{batch_id}/retry?job=job-001", headers=BEARER)
    again = client.post(f"/api/batches/{batch_id}/retry?job=job-001", headers=BEARER)
    rest = client.post(f"/api/batches/{batch_id}/retry", headers=BEARER)

    assert (one.json(), again.json(), rest.json()) == (
        {"retried": 1},
        {"retried": 0},
        {"retried": 3},
    )
    assert ledger.jobs.failed_ids(batch_id) == []


@pytest.mark.parametrize("page", ["0", "-3", "two", "²", "9" * 5000, "99999999"])
def test_any_page_number_gives_a_page(client: TestClient, ledger, storage, page: str):
    batch_id = batch_with_inputs(ledger, storage, 1)
    for path in ("/", f"/batches/{batch_id}", "/api/batches", f"/api/batches/{batch_id}"):
        assert client.get(path, params={"page": page}, headers=BEARER).status_code == 200


def test_redis_out_of_reach_is_503_not_500(storage: Storage):
    (port,) = free_ports(1)
    sources = DashboardSources(
        ledger=Ledger(redis_client(f"redis://127.0.0.1:{port}/0", retries=1), slots=SLOTS),
        thumbnails=Thumbnails(storage),
        flavors={},
        read_balances=list,
    )
    with TestClient(create_app(sources, token=Secret(TOKEN))) as down:
        for path in ("/", "/batches/b1", "/api/batches", "/healthz"):
            assert down.get(path, headers=BEARER).status_code == 503


def test_s3_out_of_reach_is_503_for_a_preview(ledger: Ledger, s3_env, valkey_url):
    (port,) = free_ports(1)
    environ = {
        **s3_env,
        "FILLPIPE_S3_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "FILLPIPE_REDIS_URL": valkey_url,
        "FILLPIPE_SIGNING_KEY": "s" * 40,
        "FILLPIPE_PROVIDER_URL": "http://127.0.0.1:9",
        "FILLPIPE_PROVIDER_KEY": "unused",
    }
    unreachable = Storage(make_s3_client(Settings.from_environ(environ), timeout_s=1, attempts=1))
    make_batch(ledger, "b-s3", 1, account="brand")
    sources = DashboardSources(
        ledger=ledger, thumbnails=Thumbnails(unreachable), flavors={}, read_balances=list
    )
    with TestClient(create_app(sources, token=Secret(TOKEN))) as down:
        answer = down.get("/batches/b-s3/thumbs/image?job=job-000", headers=BEARER)

    assert answer.status_code == 503
    assert answer.text == "S3 cannot be reached; try again shortly"
