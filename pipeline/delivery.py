"""Downloading results: only from allow-listed hosts, never redirected, size-capped.

A result URL comes from the provider, but a worker must not be made to fetch an
arbitrary URL: the host must match `RESULT_HOSTS` (shell-style patterns such as
`*.bfl.ai`, or `host:port`), the scheme must be https, except for a host listed
exactly with its port, never through a wildcard (the local or compose emulator), and the
body is streamed with a cap.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from urllib.parse import urlsplit

import httpx

from pipeline.errors import ProviderUnavailable, ResultUnavailable, UnsafeResult

CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 30.0
# The signed delivery URL has expired or was refused: re-read it from polling_url.
EXPIRED_STATUSES = frozenset({401, 403, 404, 410})


class ExpiredResultUrl(ResultUnavailable):
    """The delivery URL no longer serves the result; re-read it from the polling URL."""


class ResultFetcher:
    """Fetches result bytes within the allow-list and the size cap. One per process."""

    def __init__(
        self,
        allowed_hosts: Sequence[str],
        *,
        max_bytes: int,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._patterns = tuple(pattern.lower() for pattern in allowed_hosts)
        self._max_bytes = max_bytes
        self._http = httpx.Client(
            transport=transport,
            timeout=httpx.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S),
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"ResultFetcher(allowed_hosts={self._patterns!r}, max_bytes={self._max_bytes})"

    def close(self) -> None:
        self._http.close()

    def check_url(self, url: str) -> None:
        """Raise `UnsafeResult` unless `url` may be fetched."""
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        try:
            port = parts.port
        except ValueError:
            raise UnsafeResult("result URL has an invalid port") from None
        netloc = f"{host}:{port}" if port else host
        if not host or not any(
            fnmatch.fnmatchcase(candidate, pattern)
            for pattern in self._patterns
            for candidate in (host, netloc)
        ):
            raise UnsafeResult(f"result host {host!r} is not in RESULT_HOSTS")
        if parts.scheme == "https":
            return
        if parts.scheme == "http" and port and netloc in self._patterns:
            return
        raise UnsafeResult(f"result URL scheme {parts.scheme!r} is not allowed (https only)")

    def fetch(self, url: str) -> bytes:
        """The result's bytes. `ExpiredResultUrl` when the signed URL no longer works."""
        self.check_url(url)
        try:
            with self._http.stream("GET", url) as response:
                if response.status_code in EXPIRED_STATUSES:
                    raise ExpiredResultUrl(f"result URL answered {response.status_code}")
                if response.is_redirect:
                    raise UnsafeResult("result URL redirected; redirects are not followed")
                if response.status_code != 200:
                    raise ProviderUnavailable(f"result download answered {response.status_code}")
                return self._read_capped(response)
        except httpx.HTTPError as error:
            raise ProviderUnavailable(f"result download failed: {type(error).__name__}") from None

    def _read_capped(self, response: httpx.Response) -> bytes:
        declared = response.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self._max_bytes:
            raise UnsafeResult(f"result is {declared} bytes, over the {self._max_bytes} cap")
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > self._max_bytes:
                raise UnsafeResult(f"result is over the {self._max_bytes} byte cap")
            chunks.append(chunk)
        return b"".join(chunks)
