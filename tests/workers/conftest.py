import os

import pytest

from workers import context


@pytest.fixture
def fresh_context(monkeypatch, clean_environ):
    """An environment holding only `clean_environ`, and no runtime built in this process."""
    for name in list(os.environ):
        if name not in clean_environ:
            monkeypatch.delenv(name)
    context._close_runtime()
    yield monkeypatch
    context._close_runtime()
