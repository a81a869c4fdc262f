"""Object storage: `s3://` URIs, bounded reads, and create-only writes with tags.

Outputs are written in one PutObject carrying the body, the tags and the metadata, with
`If-None-Match: *`, so an S3-triggered consumer never sees an untagged output and a
job attempt can create its object at most once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import IO, TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from pipeline.errors import InputError, PermanentError, StorageUnavailable
from pipeline.settings import Settings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

S3_SCHEME = "s3://"
MAX_POOL_CONNECTIONS = 32
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 60.0
_PRECONDITION_CODES = {"PreconditionFailed", "ConditionalRequestConflict"}
_MISSING_CODES = {"NoSuchKey", "404", "NotFound", "NoSuchBucket"}


@dataclass(frozen=True)
class S3Uri:
    """A bucket and key, parsed from and printed as `s3://bucket/key`."""

    bucket: str
    key: str

    @classmethod
    def parse(cls, uri: str) -> S3Uri:
        if not uri.startswith(S3_SCHEME):
            raise InputError(f"{uri!r} is not an s3:// URI (expected s3://bucket/key)")
        bucket, _, key = uri[len(S3_SCHEME) :].partition("/")
        if not bucket or not key:
            raise InputError(f"{uri!r} needs both a bucket and a key: s3://bucket/key")
        return cls(bucket, key)

    def __str__(self) -> str:
        return f"{S3_SCHEME}{self.bucket}/{self.key}"


class PutOutcome(Enum):
    CREATED = "created"
    EXISTED = "existed"


@dataclass(frozen=True)
class StoredObject:
    body: bytes
    content_type: str
    tags: dict[str, str]
    metadata: dict[str, str]


@dataclass(frozen=True)
class ObjectHead:
    """What a HEAD tells of an object: its ETag (no quotes), version, size, metadata."""

    etag: str
    version_id: str | None
    size: int
    metadata: dict[str, str]


@dataclass(frozen=True)
class ListedObject:
    key: str
    etag: str
    size: int


class Storage:
    """The S3 operations the pipeline needs, over one shared boto3 client."""

    def __init__(self, client: S3Client) -> None:
        self._s3 = client

    @classmethod
    def from_settings(cls, settings: Settings) -> Storage:
        return cls(make_s3_client(settings))

    def __repr__(self) -> str:
        return "Storage()"

    @property
    def client(self) -> S3Client:
        return self._s3

    def reach(self, bucket: str) -> None:
        """Reach `bucket` once (HeadBucket): builds boto3's request machinery and opens a
        connection, so the first real request does not pay for them. Raises as a read
        would (`InputError` for a missing bucket, `PermanentError` for refused keys)."""
        try:
            self._s3.head_bucket(Bucket=bucket)
        except ClientError as error:
            raise _translate(error, S3Uri(bucket, "")) from None

    def read(self, uri: S3Uri, *, max_bytes: int) -> bytes:
        """The object's bytes; `InputError` if it is missing or larger than `max_bytes`."""
        try:
            response = self._s3.get_object(Bucket=uri.bucket, Key=uri.key)
        except ClientError as error:
            raise _translate(error, uri) from None
        if response["ContentLength"] > max_bytes:
            response["Body"].close()
            raise InputError(f"{uri} is larger than {max_bytes} bytes")
        return response["Body"].read()

    def write(self, uri: S3Uri, body: bytes, *, content_type: str) -> None:
        """Create or replace an object (inputs, reports)."""
        try:
            self._s3.put_object(Bucket=uri.bucket, Key=uri.key, Body=body, ContentType=content_type)
        except ClientError as error:
            raise _translate(error, uri) from None

    def upload(self, uri: S3Uri, fileobj: IO[bytes], *, content_type: str) -> None:
        """Create or replace an object from a file, in parts when it is large."""
        try:
            self._s3.upload_fileobj(
                fileobj, uri.bucket, uri.key, ExtraArgs={"ContentType": content_type}
            )
        except ClientError as error:
            raise _translate(error, uri) from None

    @contextlib.contextmanager
    def stream_lines(self, uri: S3Uri) -> Iterator[Iterator[str]]:
        """The object's text lines (UTF-8, line ends kept), streamed."""
        try:
            body = self._s3.get_object(Bucket=uri.bucket, Key=uri.key)["Body"]
        except ClientError as error:
            raise _translate(error, uri) from None
        try:
            yield (line.decode("utf-8") for line in body.iter_lines(keepends=True))
        finally:
            body.close()

    def put_new(
        self,
        uri: S3Uri,
        body: bytes,
        *,
        content_type: str,
        tags: Mapping[str, str],
        metadata: Mapping[str, str],
    ) -> PutOutcome:
        """Create the object with its tags and metadata, unless it already exists."""
        try:
            self._s3.put_object(
                Bucket=uri.bucket,
                Key=uri.key,
                Body=body,
                ContentType=content_type,
                Tagging=urlencode(dict(tags)),
                Metadata={name: _ascii(value) for name, value in metadata.items()},
                IfNoneMatch="*",
            )
        except ClientError as error:
            if _code(error) in _PRECONDITION_CODES:
                return PutOutcome.EXISTED
            raise _translate(error, uri) from None
        return PutOutcome.CREATED

    def fetch(self, uri: S3Uri) -> StoredObject:
        """An object with its tags and metadata (for checks and reports)."""
        try:
            response = self._s3.get_object(Bucket=uri.bucket, Key=uri.key)
            tagging = self._s3.get_object_tagging(Bucket=uri.bucket, Key=uri.key)
        except ClientError as error:
            raise _translate(error, uri) from None
        return StoredObject(
            body=response["Body"].read(),
            content_type=response.get("ContentType", ""),
            tags={tag["Key"]: tag["Value"] for tag in tagging["TagSet"]},
            metadata=dict(response.get("Metadata", {})),
        )

    def metadata(self, uri: S3Uri) -> dict[str, str] | None:
        """The object's user metadata, or None when it does not exist."""
        try:
            response = self._s3.head_object(Bucket=uri.bucket, Key=uri.key)
        except ClientError as error:
            if _code(error) in _MISSING_CODES:
                return None
            raise _translate(error, uri) from None
        return dict(response.get("Metadata", {}))

    def head(self, uri: S3Uri) -> ObjectHead | None:
        """The object's ETag, version, size and metadata, or None when it does not exist."""
        try:
            response = self._s3.head_object(Bucket=uri.bucket, Key=uri.key)
        except ClientError as error:
            if _code(error) in _MISSING_CODES:
                return None
            raise _translate(error, uri) from None
        version = response.get("VersionId")
        return ObjectHead(
            etag=response.get("ETag", "").strip('"'),
            version_id=None if version in (None, "null") else version,
            size=int(response.get("ContentLength", 0)),
            metadata=dict(response.get("Metadata", {})),
        )

    def list_pages(self, bucket: str, prefix: str) -> Iterator[list[ListedObject]]:
        """Every object under `prefix`, a page (up to 1,000) at a time, in key order."""
        paginator = self._s3.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
                yield [
                    ListedObject(item["Key"], item.get("ETag", "").strip('"'), item.get("Size", 0))
                    for item in page.get("Contents", [])
                ]
        except ClientError as error:
            raise _translate(error, S3Uri(bucket, prefix)) from None


def make_s3_client(
    settings: Settings, *, timeout_s: float | None = None, attempts: int = 6
) -> S3Client:
    """One boto3 S3 client for the process, path-style for custom endpoints; `timeout_s`
    bounds connecting and each read (default 5 s and 60 s), `attempts` the tries of a
    call, the first included."""
    config = Config(
        region_name=settings.s3_region,
        max_pool_connections=MAX_POOL_CONNECTIONS,
        connect_timeout=CONNECT_TIMEOUT_S if timeout_s is None else timeout_s,
        read_timeout=READ_TIMEOUT_S if timeout_s is None else timeout_s,
        retries={"mode": "standard", "total_max_attempts": attempts},
        s3={"addressing_style": "path" if settings.s3_endpoint_url else "auto"},
    )
    credentials: dict[str, Any] = {}
    if settings.aws_access_key_id and settings.aws_secret_access_key:
        credentials = {
            "aws_access_key_id": settings.aws_access_key_id,
            "aws_secret_access_key": settings.aws_secret_access_key.reveal(),
        }
    return boto3.session.Session().client(
        "s3", endpoint_url=settings.s3_endpoint_url, config=config, **credentials
    )


def _ascii(value: str) -> str:
    """S3 metadata travels in HTTP headers: percent-encode anything beyond ASCII."""
    return value if value.isascii() else quote(value, safe="/:@!$&'()*+,;=-._~ ")


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _translate(error: ClientError, uri: S3Uri) -> Exception:
    code = _code(error)
    if code in _MISSING_CODES:
        return InputError(f"{uri} does not exist")
    if code in {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"}:
        return PermanentError(f"access to {uri} was refused ({code}): check the credentials")
    return StorageUnavailable(f"S3 request for {uri} failed ({code or 'no code'})")
