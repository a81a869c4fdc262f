"""A process's runtime opens its connections before the first job needs them."""

import dataclasses
import logging
import threading

import pytest

from pipeline.errors import InputError
from pipeline.runtime import Runtime

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def _connections(rt: Runtime) -> int:
    """Redis connections the runtime's pool holds open (in use or idle)."""
    pool = rt.ledger.redis.connection_pool
    return len(pool._available_connections) + len(pool._in_use_connections)


def test_warm_up_opens_the_redis_connection_and_reaches_the_bucket(settings, caplog):
    rt = Runtime.from_settings(settings)
    try:
        assert _connections(rt) == 0
        with caplog.at_level(logging.WARNING, logger="pipeline.runtime"):
            rt.warm_up()
        assert _connections(rt) == 1
        # (only this thread's records: another test's warm-up may still be retrying)
        assert [r for r in caplog.records if r.thread == threading.get_ident()] == []
    finally:
        rt.close()


def test_a_missing_bucket_is_logged_at_warm_up_not_raised(settings, caplog):
    rt = Runtime.from_settings(dataclasses.replace(settings, bucket="no-such-bucket"))
    try:
        with pytest.raises(InputError, match="s3://no-such-bucket/ does not exist"):
            rt.storage.reach("no-such-bucket")
        with caplog.at_level(logging.WARNING, logger="pipeline.runtime"):
            rt.warm_up()
        assert "warm-up: s3://no-such-bucket/ does not exist (jobs will retry)" in caplog.text
    finally:
        rt.close()
