import httpx
import pytest

from pipeline.delivery import ExpiredResultUrl, ResultFetcher
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
