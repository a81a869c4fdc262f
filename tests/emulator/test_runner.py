"""The task runner on its own, with a real runtime (thread pool, event loop)."""

import asyncio
import random
import threading
import time

import pytest

from emulator.runner import TaskRunner
from emulator.runtime import INLINE_READ_MAX_CHARS, NotStarted, Runtime
from emulator.tasks import Caller, TaskStatus
from tests.emulator.helpers import KEY, Clock, make_config

CALLER = Caller(KEY, "http://emulator", "/v1")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def explode() -> None:
    raise RuntimeError("the image work broke")


@pytest.mark.anyio
async def test_failing_work_ends_the_task_as_error() -> None:
    clock = Clock()
    config = make_config()
    async with Runtime(config) as runtime:
        runner = TaskRunner(config, clock=clock, runtime=runtime, rng=random.Random(0))
        task = runner.start(CALLER, "t1", {}, size_mp=1.0)

        outcome = await runner.produce(task, explode)

    report = runner.report(CALLER, "t1")
    assert outcome is None
    assert (report["status"], report["result"]) == ("Error", None)
    assert report["details"] == {"error": "Internal error while generating the result"}


@pytest.mark.anyio
async def test_work_runs_in_the_pool_and_the_task_becomes_ready() -> None:
    clock = Clock()
    config = make_config(latency_base_s=0.2)
    async with Runtime(config) as runtime:
        runner = TaskRunner(config, clock=clock, runtime=runtime, rng=random.Random(0))
        task = runner.start(CALLER, "t1", {}, size_mp=0.0)

        outcome = await runner.produce(task, lambda: 42)
        runner.finish(task)

    assert outcome == 42
    assert task.status is TaskStatus.READY
    assert task.latency_s == 0.2


@pytest.mark.anyio
async def test_the_runtime_must_be_started() -> None:
    runtime = Runtime(make_config())
    with pytest.raises(NotStarted):
        await runtime.run_cpu(explode)
    with pytest.raises(NotStarted):
        await runtime.read_request(explode, size=0)


@pytest.mark.anyio
async def test_request_bodies_are_read_while_the_task_pool_is_busy() -> None:
    # A submit is validated and answered without waiting behind queued renders.
    release = threading.Event()
    config = make_config(worker_threads=1)
    async with Runtime(config) as runtime:
        busy = asyncio.ensure_future(runtime.run_cpu(release.wait, 10.0))
        try:
            read = await asyncio.wait_for(
                runtime.read_request(lambda: "parsed", size=INLINE_READ_MAX_CHARS + 1),
                timeout=5.0,
            )
            assert not busy.done()
        finally:
            release.set()
        assert await busy is True

    assert read == "parsed"


@pytest.mark.anyio
async def test_small_payloads_are_read_on_the_loop_and_large_ones_in_the_pool() -> None:
    # A thread hop costs more than decoding a small image; a large one must not hold up
    # the loop.
    async with Runtime(make_config()) as runtime:
        small = await runtime.read_request(threading.get_ident, size=INLINE_READ_MAX_CHARS)
        large = await runtime.read_request(threading.get_ident, size=INLINE_READ_MAX_CHARS + 1)

    assert small == threading.get_ident()
    assert large != threading.get_ident()


@pytest.mark.anyio
async def test_work_starts_halfway_through_the_latency() -> None:
    # The emulator renders on the caller's cores: not in the turn-around just after a
    # task is created, where the submits of a pipeline under test bunch up.
    config = make_config(latency_base_s=0.4)
    async with Runtime(config) as runtime:
        runner = TaskRunner(config, clock=time.time, runtime=runtime, rng=random.Random(0))
        task = runner.start(CALLER, "t1", {}, size_mp=0.0)

        worked_at = await runner.produce(task, time.time)
        runner.finish(task)
        done_at = time.time()

    assert worked_at is not None
    assert 0.2 <= worked_at - task.created_at < 0.4  # halfway through its 0.4 s
    assert done_at >= task.ready_at
    assert task.status is TaskStatus.READY
