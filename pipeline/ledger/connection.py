"""Redis clients for the ledger: decoded replies, short timeouts, ~30 s of retries.

A command cut off mid-flight may run twice; every ledger write is a script that checks
state first, so a repeat changes nothing. So a Redis restart (with AOF) pauses the
pipeline for its duration instead of failing it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

REDIS_RETRIES = 40
# For a person waiting on a page: about half a second, then the page says Redis is out.
INTERACTIVE_RETRIES = 4
REDIS_RETRY_CAP_S = 1.0
REDIS_RETRY_BASE_S = 0.05
CONNECT_TIMEOUT_S = 5.0
HEALTH_CHECK_INTERVAL_S = 30


def redis_client(url: str, *, retries: int = REDIS_RETRIES) -> redis.Redis:
    """A client on `url` that rides out a Redis restart (with `retries` tries more)."""
    return redis.Redis.from_url(url, **client_options(Retry, retries))


def async_redis_client(url: str) -> aioredis.Redis:
    """The asyncio twin of `redis_client` (same retries, same timeouts)."""
    return aioredis.Redis.from_url(url, **client_options(AsyncRetry))


def client_options(retry_class: Callable[..., Any], retries: int = REDIS_RETRIES) -> dict[str, Any]:
    """The options of every fillpipe Redis client, sync or asyncio."""
    backoff = ExponentialBackoff(cap=REDIS_RETRY_CAP_S, base=REDIS_RETRY_BASE_S)
    return {
        "decode_responses": True,
        "retry": retry_class(backoff, retries),
        "retry_on_error": [redis.ConnectionError, redis.TimeoutError],
        "socket_connect_timeout": CONNECT_TIMEOUT_S,
        "health_check_interval": HEALTH_CHECK_INTERVAL_S,
    }
