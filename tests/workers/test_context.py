"""A worker builds its runtime as it starts, not on its first task."""

import logging
import time

import pytest
from celery.signals import worker_init

from fillpipe.ports import free_ports
from pipeline.errors import ConfigError
from workers import context

pytestmark = pytest.mark.timeout(30)


def test_worker_init_builds_the_runtime_the_tasks_then_use(fresh_context, stack):
    for name, value in stack.env.items():
        fresh_context.setenv(name, value)

    worker_init.send(sender=None)

    built = context._runtime
    assert built is not None
    assert context.runtime() is built
    assert built.settings.redis_url == stack.env["FILLPIPE_REDIS_URL"]


def test_bad_settings_at_worker_init_are_logged_then_raised_by_the_first_task(
    fresh_context, caplog
):
    with caplog.at_level(logging.ERROR, logger="workers.context"):
        worker_init.send(sender=None)

    assert context._runtime is None
    assert "could not build the worker runtime" in caplog.text
    with pytest.raises(ConfigError, match="FILLPIPE_REDIS_URL"):
        context.runtime()


def test_worker_init_does_not_wait_for_servers_that_are_down(fresh_context, stack):
    # The clients retry an unreachable Redis for ~30 s; connecting must not hold up the
    # worker's start.
    redis_port, s3_port = free_ports(2)
    for name, value in stack.env.items():
        fresh_context.setenv(name, value)
    fresh_context.setenv("FILLPIPE_REDIS_URL", f"redis://127.0.0.1:{redis_port}/0")
    fresh_context.setenv("FILLPIPE_S3_ENDPOINT_URL", f"http://127.0.0.1:{s3_port}")

    started = time.monotonic()
    worker_init.send(sender=None)

    assert time.monotonic() - started < 2.0
    assert context._runtime is not None
