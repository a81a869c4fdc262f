"""Preflight of the stores: the bucket takes, tags, returns and drops a probe object;
Redis answers and will not evict the ledger's keys.

Both use clients of their own with short timeouts and no retries (the pipeline's ride
out outages for tens of seconds), so a dead server fails its check within seconds.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING
from urllib.parse import urlencode

import redis
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
from redis.backoff import NoBackoff
from redis.retry import Retry

from pipeline.preflight.results import CheckResult, fail, ok, warn
from pipeline.settings import Settings, redact_url
from pipeline.storage import S3Uri, make_s3_client
from pipeline.triggers.intake import OUTPUT_MARK

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# Under outputs/, where fillpipe's own permissions (infra/iam-policy.json) let it write,
# tag and read back; the output mark keeps trigger rules from taking the probe.
PROBE_PREFIX = "outputs/fillpipe-check/"
PROBE_TAG = "fillpipe-check"
_CREDENTIAL_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken"}
_DENIED = "AccessDenied"
_WANTED_POLICY = "noeviction"


def check_storage(settings: Settings, *, timeout_s: float) -> CheckResult:
    """Put a tagged probe object in the bucket, read its tags and body back, delete it."""
    endpoint = redact_url(settings.s3_endpoint_url) if settings.s3_endpoint_url else "AWS S3"
    try:
        client = probe_s3_client(settings, timeout_s=timeout_s)
    except ValueError:  # boto3's "Invalid endpoint"
        return fail(
            "s3",
            f"FILLPIPE_S3_ENDPOINT_URL {endpoint} is not a URL",
            "set it to the server's http(s)://host:port, or unset it for AWS S3",
        )
    try:
        return _probe(client, settings.bucket, endpoint)
    except NoCredentialsError:
        return fail(
            "s3",
            f"no S3 credentials for {endpoint}",
            "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or boto3's own configuration)",
        )
    except BotoCoreError as error:
        return fail(
            "s3",
            f"could not reach S3 at {endpoint} ({type(error).__name__})",
            "check FILLPIPE_S3_ENDPOINT_URL (unset for AWS) and that the server runs",
        )
    except ClientError as error:
        return _refused(error, settings.bucket, endpoint)
    finally:
        client.close()


def probe_s3_client(settings: Settings, *, timeout_s: float) -> S3Client:
    """An S3 client like the pipeline's, but with `timeout_s` and a single attempt."""
    return make_s3_client(settings, timeout_s=timeout_s, attempts=1)


def _probe(s3: S3Client, bucket: str, endpoint: str) -> CheckResult:
    # Listing first: some S3 servers (SeaweedFS) create a missing bucket on a put.
    try:
        s3.list_objects_v2(Bucket=bucket, Prefix=PROBE_PREFIX, MaxKeys=1)
    except ClientError as error:
        if _code(error) != _DENIED:  # a denied listing is not fillpipe's concern
            raise
    token = secrets.token_hex(8)
    probe = S3Uri(bucket, f"{PROBE_PREFIX}{token}.txt")
    body = f"fillpipe check {token}\n".encode()
    try:
        s3.put_object(
            Bucket=bucket,
            Key=probe.key,
            Body=body,
            ContentType="text/plain",
            Tagging=urlencode({PROBE_TAG: token}),
            Metadata={OUTPUT_MARK: PROBE_TAG},
        )
    except ClientError as error:
        if _code(error) != _DENIED:
            raise
        return _missing(probe, ["s3:PutObject", "s3:PutObjectTagging"])
    try:
        missing, problems = _read_back(s3, probe, token, body)
    finally:  # whatever the reads met, the probe does not stay
        deleted = _delete(s3, probe)
    return _outcome(probe, endpoint, missing, problems, deleted)


def _read_back(s3: S3Client, probe: S3Uri, token: str, body: bytes) -> tuple[list[str], list[str]]:
    """(permissions refused, other problems) reading the probe's tags and body."""
    missing: list[str] = []
    problems: list[str] = []
    try:
        tag_set = s3.get_object_tagging(Bucket=probe.bucket, Key=probe.key)["TagSet"]
        if {tag["Key"]: tag["Value"] for tag in tag_set}.get(PROBE_TAG) != token:
            problems.append("its tag did not come back (fillpipe tags every output)")
    except ClientError as error:
        _note_denied(error, "s3:GetObjectTagging", missing)
    try:
        if s3.get_object(Bucket=probe.bucket, Key=probe.key)["Body"].read() != body:
            problems.append("its body came back different")
    except ClientError as error:
        _note_denied(error, "s3:GetObject", missing)
    return missing, problems


def _delete(s3: S3Client, probe: S3Uri) -> bool:
    """Delete the probe; False when that is refused (fillpipe itself never deletes)."""
    try:
        s3.delete_object(Bucket=probe.bucket, Key=probe.key)
    except ClientError as error:
        _note_denied(error, "s3:DeleteObject", [])
        return False
    return True


def _note_denied(error: ClientError, permission: str, missing: list[str]) -> None:
    """Add `permission` to `missing` when S3 refused it; raise any other error."""
    if _code(error) != _DENIED:
        raise error
    missing.append(permission)


def _outcome(
    probe: S3Uri, endpoint: str, missing: list[str], problems: list[str], deleted: bool
) -> CheckResult:
    if missing:
        return _missing(probe, missing)
    if problems:
        return fail(
            "s3",
            f"probe {probe} on {endpoint}: {'; '.join(problems)}",
            "use an S3 server that keeps object tags and bodies as written",
        )
    if not deleted:
        return warn(
            "s3",
            f"put, tagged and read back {probe}; deleting it was refused (s3:DeleteObject)",
            f"delete it by hand, or grant s3:DeleteObject on {PROBE_PREFIX}* to clean up",
        )
    return ok("s3", f"put, tagged, read back and deleted a probe in {probe.bucket} on {endpoint}")


def _missing(probe: S3Uri, permissions: list[str]) -> CheckResult:
    listed = ", ".join(permissions)
    return fail(
        "s3",
        f"access denied writing or reading {probe}: missing {listed}",
        f"grant {listed} on arn:aws:s3:::{probe.bucket}/outputs/* to these credentials "
        f"(infra/iam-policy.json)",
    )


def _refused(error: ClientError, bucket: str, endpoint: str) -> CheckResult:
    code = _code(error)
    if code in {"NoSuchBucket", "404"}:
        return fail(
            "s3",
            f"bucket {bucket} does not exist on {endpoint}",
            "create it or set FILLPIPE_BUCKET",
        )
    if code in _CREDENTIAL_CODES or code == _DENIED:
        return fail(
            "s3",
            f"S3 at {endpoint} refused the credentials ({code})",
            "check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
        )
    return fail("s3", f"S3 at {endpoint} answered {code or 'an error'}", "try again later")


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def check_redis(url: str, *, timeout_s: float) -> CheckResult:
    """PING, then `maxmemory-policy` is noeviction (when CONFIG GET is allowed)."""
    shown = redact_url(url)
    try:
        client = redis.Redis.from_url(
            url,
            socket_connect_timeout=timeout_s,
            socket_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),
            decode_responses=True,
        )
    except ValueError:
        return fail("redis", f"{shown} is not a Redis URL", "set FILLPIPE_REDIS_URL=redis://…")
    try:
        client.ping()
        policy = _eviction_policy(client)
    except redis.AuthenticationError:
        return fail(
            "redis", f"Redis at {shown} refused the password", "fix it in FILLPIPE_REDIS_URL"
        )
    except redis.RedisError as error:
        return fail(
            "redis",
            f"Redis at {shown} does not answer ({type(error).__name__})",
            "start Redis or fix FILLPIPE_REDIS_URL",
        )
    finally:
        client.close()
    return _policy_result(shown, policy)


def _eviction_policy(client: redis.Redis) -> str | None:
    """`maxmemory-policy`, or None where CONFIG is forbidden (managed Redis)."""
    try:
        reply = client.config_get("maxmemory-policy")
    except redis.ResponseError:
        return None
    value = reply.get("maxmemory-policy") if isinstance(reply, dict) else None
    return str(value) if value is not None else None


def _policy_result(shown: str, policy: str | None) -> CheckResult:
    if policy is None:
        return ok(
            "redis",
            f"PING answered at {shown}; maxmemory-policy not readable (CONFIG not allowed): "
            f"make sure it is {_WANTED_POLICY}",
        )
    if policy != _WANTED_POLICY:
        return warn(
            "redis",
            f"PING answered at {shown}, but maxmemory-policy is {policy}: "
            f"under memory pressure Redis would drop the ledger's keys",
            f"set maxmemory-policy {_WANTED_POLICY} (redis.conf or your provider's settings)",
        )
    return ok("redis", f"PING answered at {shown}; maxmemory-policy {_WANTED_POLICY}")
