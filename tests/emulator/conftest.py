"""Fixtures for the emulator tests: a driven clock and clients on apps built by
`create_app`, run inside `TestClient` so the lifespan starts and stops them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from emulator.app import create_app
from tests.emulator.helpers import Clock, make_config


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_client(clock: Clock) -> Iterator[Callable[..., TestClient]]:
    """Clients on apps built with `make_config(**overrides)`; closed after the test."""
    with ExitStack() as stack:

        def make(
            *, webhook_transport: httpx.AsyncBaseTransport | None = None, **overrides: Any
        ) -> TestClient:
            app = create_app(
                make_config(**overrides), clock=clock, webhook_transport=webhook_transport
            )
            return stack.enter_context(TestClient(app))

        yield make


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()
