import random

import pytest

from emulator.tasks import Latency, Sample, Task, TaskStatus, TaskStore
from tests.emulator.helpers import Clock


def task(
    task_id: str = "t1", owner: str = "key-a", *, created_at: float = 100.0, latency_s: float = 10.0
) -> Task:
    return Task(
        id=task_id,
        owner=owner,
        base_url="http://emulator",
        created_at=created_at,
        latency_s=latency_s,
    )


def test_latency_grows_with_size_and_never_goes_negative() -> None:
    rng = random.Random(0)

    assert Latency(1.0, 2.0, 0.0).draw(0.5, rng) == 2.0
    assert Latency(0.0, 0.0, 5.0).draw(1.0, rng) >= 0.0
    draws = [Latency(1.0, 0.0, 0.25).draw(0.0, rng) for _ in range(200)]
    assert 0.75 <= min(draws) < max(draws) <= 1.25


def test_progress_grows_over_the_latency() -> None:
    pending = task()

    assert [pending.progress(now) for now in (90.0, 100.0, 105.0, 200.0)] == [0.0, 0.0, 0.5, 0.99]
    assert task(latency_s=0).progress(100.0) == 0.99
    pending.finish(120.0)
    assert pending.progress(120.0) == 1.0


def test_the_report_of_a_ready_task() -> None:
    ready = task()
    ready.facts = {"prompt": "p", "seed": 3}
    ready.finish(112.5, Sample(b"png", "png"))

    report = ready.report(113.0, "http://emulator/delivery/t1/sample.png?sig=x")

    assert report == {
        "id": "t1",
        "status": "Ready",
        "progress": 1.0,
        "details": None,
        "preview": None,
        "result": {
            "sample": "http://emulator/delivery/t1/sample.png?sig=x",
            "prompt": "p",
            "seed": 3,
            "start_time": 100.0,
            "end_time": 112.5,
            "duration": 12.5,
        },
    }


def test_a_failed_task_reports_why() -> None:
    failed = task()
    failed.fail(101.0, "boom")

    report = failed.report(102.0, None)

    assert (report["status"], report["result"], report["progress"]) == ("Error", None, None)
    assert report["details"] == {"error": "boom"}


@pytest.mark.parametrize(
    ("output_format", "filename", "media_type"),
    [
        ("jpeg", "sample.jpg", "image/jpeg"),
        ("png", "sample.png", "image/png"),
        ("webp", "sample.webp", "image/webp"),
    ],
)
def test_samples_are_named_for_their_format(
    output_format: str, filename: str, media_type: str
) -> None:
    sample = Sample(b"", output_format)

    assert (sample.filename, sample.media_type) == (filename, media_type)


def test_the_store_forgets_tasks_after_the_ttl() -> None:
    clock = Clock()
    store = TaskStore(ttl_s=60, clock=clock)
    old, new = task("old", created_at=clock.now), task("new", created_at=clock.now + 30)
    store.add(old)
    store.add(new)

    clock.advance(59)
    assert store.get("old") is old
    clock.advance(1)
    assert store.get("old") is None
    assert store.get("new") is new


def test_the_store_keeps_owners_apart() -> None:
    store = TaskStore(ttl_s=60, clock=Clock())
    mine = task(owner="key-a", created_at=Clock().now)
    store.add(mine)

    assert store.owned("key-a", "t1") is mine
    assert store.owned("key-b", "t1") is None
    assert TaskStatus.NOT_FOUND.value == "Task not found"
