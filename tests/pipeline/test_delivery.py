import ipaddress
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from pipeline.delivery import (
    CONNECT_TIMEOUT_S,
    READ_TIMEOUT_S,
    ExpiredResultUrl,
    ResultFetcher,
    is_public_address,
)
from pipeline.errors import ProviderUnavailable, UnsafeResult

pytestmark = pytest.mark.timeout(10)

HOSTS = ("*.bfl.ai", "127.0.0.1:8090", "emulator:8090")


def fetcher(handler=None, max_bytes=1000) -> ResultFetcher:
    handler = handler or (lambda request: httpx.Response(200, content=b"image-bytes"))
    return ResultFetcher(HOSTS, max_bytes=max_bytes, transport=httpx.MockTransport(handler))


@pytest.mark.parametrize(
    "url",
    [
        "https://delivery.eu1.bfl.ai/results/x.jpg?sig=1",
        "http://127.0.0.1:8090/delivery/x.png",
        "http://emulator:8090/delivery/x.png",  # listed exactly with its port
    ],
)
def test_allowed_urls(url):
    assert fetcher().fetch(url) == b"image-bytes"


@pytest.mark.parametrize(
    "url",
    [
        "http://delivery.bfl.ai/x.jpg",  # plain http off loopback
        "https://bfl.ai.evil.com/x.jpg",  # look-alike host
        "https://evil.com/delivery.bfl.ai/x.jpg",  # allowed name only in the path
        "http://127.0.0.1:9999/x.png",  # loopback, unlisted port
        "http://169.254.169.254/latest/meta-data",
        "file:///etc/passwd",
        "https://delivery.bfl.ai:notaport/x",
    ],
)
def test_refused_urls(url):
    with pytest.raises(UnsafeResult):
        fetcher().fetch(url)


def test_size_cap_applies_to_declared_and_streamed_length():
    big = fetcher(lambda request: httpx.Response(200, content=b"x" * 2000))
    with pytest.raises(UnsafeResult, match="cap"):
        big.fetch("https://delivery.bfl.ai/x")

    def streamed(request):
        return httpx.Response(
            200, stream=httpx.ByteStream(b"x" * 2000), headers={"content-length": "10"}
        )

    with pytest.raises(UnsafeResult, match="cap"):
        fetcher(streamed).fetch("https://delivery.bfl.ai/x")


def test_redirects_are_not_followed():
    redirect = fetcher(
        lambda request: httpx.Response(302, headers={"location": "http://169.254.169.254/"})
    )
    with pytest.raises(UnsafeResult, match="redirect"):
        redirect.fetch("https://delivery.bfl.ai/x")


def test_expired_and_failing_downloads():
    with pytest.raises(ExpiredResultUrl):
        fetcher(lambda request: httpx.Response(403)).fetch("https://delivery.bfl.ai/x")
    with pytest.raises(ProviderUnavailable):
        fetcher(lambda request: httpx.Response(502)).fetch("https://delivery.bfl.ai/x")


# -- addresses: only public ones, unless the host is listed exactly with its port --------


@pytest.mark.parametrize(
    "text",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # link-local (cloud metadata)
        "100.64.0.1",  # shared address space (carrier NAT)
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",  # reserved
        "255.255.255.255",
        "192.0.2.10",  # documentation
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "ff02::1",
        "::ffff:127.0.0.1",  # IPv4-mapped
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "2002:7f00:1::1",  # 6to4 around 127.0.0.1
        "64:ff9b::a00:1",  # NAT64 around 10.0.0.1
        "2001:db8::1",
    ],
)
def test_non_public_addresses(text):
    assert not is_public_address(ipaddress.ip_address(text))


@pytest.mark.parametrize(
    "text", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111", "::ffff:93.184.215.14"]
)
def test_public_addresses(text):
    assert is_public_address(ipaddress.ip_address(text))


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/x",
        "https://[::1]/x",
        "https://[::ffff:127.0.0.1]/x",
        "https://[::ffff:a9fe:a9fe]/x",  # 169.254.169.254, mapped, written in hex
        "https://10.0.0.8/x",
        "https://0.0.0.0/x",
    ],
)
def test_ip_literals_must_be_public_even_through_a_wildcard(url):
    with pytest.raises(UnsafeResult, match="public"):
        ResultFetcher(("*",), max_bytes=100).check_url(url)


class Server:
    """A real HTTP server on 127.0.0.1 that counts connections and records Host headers."""

    def __init__(self) -> None:
        self.connections = 0
        self.hosts: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                owner.connections += 1
                super().setup()

            def do_GET(self) -> None:
                owner.hosts.append(self.headers.get("host", ""))
                if self.path == "/stall":
                    time.sleep(3)
                    return
                if self.path == "/trickle":
                    self.send_response(200)
                    self.send_header("content-length", "100")
                    self.end_headers()
                    for _ in range(100):
                        self.wfile.write(b"x")
                        self.wfile.flush()
                        time.sleep(0.05)
                    return
                self.send_response(200)
                self.send_header("content-length", "11")
                self.end_headers()
                self.wfile.write(b"image-bytes")

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    running = Server()
    yield running
    running.stop()


class FakeDns:
    """A resolver seam: names to addresses, every lookup recorded."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.lookups: list[tuple[str, int]] = []

    def __call__(self, host, port, family=0, type=0):
        self.lookups.append((host, port))
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "unknown name")
        return [
            (
                socket.AF_INET6 if ":" in address else socket.AF_INET,
                socket.SOCK_STREAM,
                6,
                "",
                (address, port),
            )
            for address in self.answers[host]
        ]


def real_fetcher(hosts, dns, **kwargs) -> ResultFetcher:
    return ResultFetcher(hosts, max_bytes=1000, resolver=dns, **kwargs)


def test_a_host_listed_exactly_with_its_port_may_be_loopback(server):
    dns = FakeDns({"emulator": ["127.0.0.1"]})
    fetcher = real_fetcher(("*.bfl.ai", f"emulator:{server.port}"), dns)
    assert fetcher.fetch(f"http://emulator:{server.port}/ok") == b"image-bytes"
    # Connected to the checked address, with the host name kept in the request.
    assert server.hosts == [f"emulator:{server.port}"]
    assert dns.lookups == [("emulator", server.port)]


@pytest.mark.parametrize(
    "answer",
    [["127.0.0.1"], ["::ffff:127.0.0.1"], ["93.184.215.14", "127.0.0.1"], ["10.0.0.1"]],
)
def test_a_wildcard_name_resolving_to_a_private_address_is_never_connected(server, answer):
    dns = FakeDns({"delivery.bfl.ai": answer})
    fetcher = real_fetcher(("*.bfl.ai",), dns)
    with pytest.raises(UnsafeResult, match="non-public"):
        fetcher.fetch(f"https://delivery.bfl.ai:{server.port}/ok")
    assert server.connections == 0
    assert len(dns.lookups) == 1  # one resolution, checked and used for the connection


def test_the_same_host_on_another_port_gets_no_allowance(server):
    dns = FakeDns({"emulator": ["127.0.0.1"]})
    fetcher = real_fetcher(("emulator:1", "emulator"), dns)
    with pytest.raises(UnsafeResult, match="non-public"):
        fetcher.fetch(f"https://emulator:{server.port}/ok")
    assert server.connections == 0


def test_the_default_resolver_and_transport_refuse_localhost(server):
    fetcher = ResultFetcher(("localhost",), max_bytes=1000)
    with pytest.raises(UnsafeResult, match="non-public"):
        fetcher.fetch(f"https://localhost:{server.port}/ok")
    assert server.connections == 0


def test_an_unresolvable_name_is_a_retryable_failure():
    fetcher = real_fetcher(("*.bfl.ai",), FakeDns({}))
    with pytest.raises(ProviderUnavailable):
        fetcher.fetch("https://delivery.bfl.ai/x")


def test_timeouts_exist_and_a_silent_server_is_given_up(server):
    timeout = ResultFetcher(("*.bfl.ai",), max_bytes=1000)._http.timeout
    assert (timeout.connect, timeout.read) == (CONNECT_TIMEOUT_S, READ_TIMEOUT_S)
    dns = FakeDns({"emulator": ["127.0.0.1"]})
    fetcher = real_fetcher((f"emulator:{server.port}",), dns, read_timeout_s=0.3)
    started = time.monotonic()
    with pytest.raises(ProviderUnavailable, match="ReadTimeout"):
        fetcher.fetch(f"http://emulator:{server.port}/stall")
    assert time.monotonic() - started < 2


def test_a_trickling_server_hits_the_overall_deadline(server):
    dns = FakeDns({"emulator": ["127.0.0.1"]})
    fetcher = real_fetcher(
        (f"emulator:{server.port}",), dns, read_timeout_s=1.0, total_timeout_s=0.5
    )
    with pytest.raises(ProviderUnavailable, match="took over"):
        fetcher.fetch(f"http://emulator:{server.port}/trickle")
