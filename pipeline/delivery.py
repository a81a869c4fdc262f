"""Downloading results: only from allow-listed hosts, never redirected, size-capped.

A result URL comes from the provider, but a worker must not be made to fetch an
arbitrary URL: the host must match `RESULT_HOSTS` (shell-style patterns such as
`*.bfl.ai`, or `host:port`), the scheme must be https, except for a host listed
exactly with its port, never through a wildcard (the local or compose emulator), and the
body is streamed with a cap, per-read timeouts and an overall deadline.

The address connected to must be public: private, loopback, link-local, shared,
reserved, multicast and unspecified addresses (IPv4 and IPv6, IPv4 inside IPv6
included) are refused, unless the host is listed exactly with its port (that listing is
the explicit allowance the embedded stack and compose use to reach the emulator). The
check runs inside the connection itself: a network backend resolves the name once
(through an injectable resolver), checks every address and connects to the checked
address, while TLS still verifies the certificate and sends SNI for the host name. So a
name that resolves to a public address for a pre-check and to a private one when
connecting (DNS rebinding) gets nowhere.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from pipeline.errors import ExpiredResultUrl, ProviderUnavailable, UnsafeResult

CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 30.0
# Whole-download deadline: a server trickling bytes under the read timeout stops here.
TOTAL_TIMEOUT_S = 120.0
# The signed delivery URL has expired or was refused: re-read it from polling_url.
EXPIRED_STATUSES = frozenset({401, 403, 404, 410})


# getaddrinfo's signature, as far as fetching uses it: (host, port, family, type) -> infos.
Resolver = Callable[..., list[tuple[Any, ...]]]
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def is_public_address(address: IpAddress) -> bool:
    """True for a globally routable unicast address; any address a v6 one embeds
    (IPv4-mapped, 6to4, Teredo, NAT64) must be public too."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded: list[IpAddress] = []
        if address.ipv4_mapped is not None:
            embedded.append(address.ipv4_mapped)
        if address.sixtofour is not None:
            embedded.append(address.sixtofour)
        if address.teredo is not None:
            embedded.extend(address.teredo)
        if address in _NAT64:
            embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        if any(not is_public_address(inner) for inner in embedded):
            return False
        if address.ipv4_mapped is not None:
            return True  # judged by the IPv4 address it carries
    return not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_reserved
        or address.is_multicast
        or address.is_unspecified
        or not address.is_global
    )


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class _GuardedBackend(httpcore.NetworkBackend):
    """Connects only to addresses the allowance permits, resolving each name once."""

    def __init__(self, resolver: Resolver, may_be_private: Callable[[str, int], bool]) -> None:
        self._resolver = resolver
        self._may_be_private = may_be_private
        self._tcp = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = _resolve(self._resolver, host, port)
        if not self._may_be_private(host, port):
            for address in addresses:
                if not is_public_address(address):
                    raise UnsafeResult(
                        f"result host {host!r} resolves to a non-public address ({address})"
                    )
        error: Exception = httpcore.ConnectError(f"no address for {host!r}")
        for address in addresses:
            try:
                # An IP literal: the backend does no second lookup; TLS still uses `host`.
                return self._tcp.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as failed:
                error = failed
        raise error

    def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.NetworkStream:
        raise UnsafeResult("result downloads never use unix sockets")


def _resolve(resolver: Resolver, host: str, port: int) -> list[IpAddress]:
    try:
        infos = resolver(host, port, 0, socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        raise httpcore.ConnectError(f"cannot resolve {host!r}: {type(error).__name__}") from None
    addresses: list[IpAddress] = []
    for info in infos:
        # sockaddr[0]; an IPv6 one may carry a scope ("fe80::1%eth0").
        text = str(info[4][0]).split("%", 1)[0]
        address = ipaddress.ip_address(text)
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise httpcore.ConnectError(f"no address for {host!r}")
    return addresses


class _GuardedTransport(httpx.HTTPTransport):
    """httpx's own transport with its connection pool on the guarded network backend.

    httpx 0.28 takes no network backend, so the pool it built is replaced by an identical
    one on ours; httpcore's `ConnectionPool` and `NetworkBackend` are public API.
    `tests/pipeline/test_delivery.py` proves the swap still holds (a loopback server
    behind an allowed name is never reached).
    """

    def __init__(self, backend: httpcore.NetworkBackend) -> None:
        super().__init__(trust_env=False)
        if not isinstance(getattr(self, "_pool", None), httpcore.ConnectionPool):
            raise RuntimeError("this httpx version keeps its pool elsewhere: update delivery.py")
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            network_backend=backend,
        )


class ResultFetcher:
    """Fetches result bytes within the allow-list and the size cap. One per process.

    `resolver` (default `socket.getaddrinfo`) is the seam for tests to fake DNS;
    `transport` replaces the whole network side (then no address check runs).
    """

    def __init__(
        self,
        allowed_hosts: Sequence[str],
        *,
        max_bytes: int,
        transport: httpx.BaseTransport | None = None,
        resolver: Resolver = socket.getaddrinfo,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        read_timeout_s: float = READ_TIMEOUT_S,
        total_timeout_s: float = TOTAL_TIMEOUT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._patterns = tuple(pattern.lower() for pattern in allowed_hosts)
        # Entries naming one host and port, no wildcard: these may be private addresses.
        self._exact = frozenset(
            pattern
            for pattern in self._patterns
            if not any(c in pattern for c in "*?[") and pattern.rpartition(":")[2].isdigit()
        )
        self._max_bytes = max_bytes
        self._total_timeout_s = total_timeout_s
        self._clock = clock
        self._http = httpx.Client(
            transport=transport or _GuardedTransport(_GuardedBackend(resolver, self._listed)),
            timeout=httpx.Timeout(read_timeout_s, connect=connect_timeout_s),
            follow_redirects=False,
            trust_env=False,
        )

    def __repr__(self) -> str:
        return f"ResultFetcher(allowed_hosts={self._patterns!r}, max_bytes={self._max_bytes})"

    def close(self) -> None:
        self._http.close()

    def _listed(self, host: str, port: int) -> bool:
        """True when `host:port` is listed exactly: an explicit allowance for any address."""
        return f"{host.lower()}:{port}" in self._exact

    def check_url(self, url: str) -> None:
        """Raise `UnsafeResult` unless `url` may be fetched (an IP literal host must be
        public unless listed exactly; names are checked when connecting)."""
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
        literal = _ip_literal(host)
        if literal is not None and not is_public_address(literal) and netloc not in self._exact:
            raise UnsafeResult(f"result host {host!r} is not a public address")
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
        declared = (response.headers.get("content-length") or "").strip()
        if (declared.isascii() and declared.isdigit()) and (
            len(declared) > 18 or int(declared) > self._max_bytes
        ):
            raise UnsafeResult(f"result is {declared[:20]} bytes, over the {self._max_bytes} cap")
        deadline = self._clock() + self._total_timeout_s
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > self._max_bytes:
                raise UnsafeResult(f"result is over the {self._max_bytes} byte cap")
            if self._clock() > deadline:
                raise ProviderUnavailable(f"result download took over {self._total_timeout_s:g} s")
            chunks.append(chunk)
        return b"".join(chunks)


def _ip_literal(host: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None
