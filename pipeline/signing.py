"""Callback tokens, per-job webhook secrets and callback verification.

A callback URL carries an itsdangerous token (salted for its one purpose, timestamped,
expiring) that names the job and the attempt. The provider echoes a per-attempt webhook
secret, derived from the signing key, in `X-Webhook-Secret`, and may sign the raw body in
`X-BFL-Signature: sha256=<hex>`. Verification takes the raw bytes and raises one error
type, `VerificationError`, whose message is for logs only.

Signing keys rotate: the first key signs, every key verifies.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from itsdangerous import BadData, TimestampSigner, URLSafeTimedSerializer

from pipeline.errors import VerificationError
from pipeline.models import JobRef
from pipeline.settings import Secret

TOKEN_SALT = "fillpipe.callback-token.v1"  # noqa: S105 (a salt, not a secret)
WEBHOOK_SECRET_CONTEXT = b"fillpipe.webhook-secret.v1"
SECRET_HEADER = "x-webhook-secret"  # noqa: S105 (a header name)
SIGNATURE_HEADER = "x-bfl-signature"
SIGNATURE_PREFIX = "sha256="

Clock = Callable[[], float]


@dataclass(frozen=True)
class CallbackClaim:
    """What a verified callback token says: which job, which attempt."""

    ref: JobRef
    attempt: int


def body_signature(secret: str, body: bytes) -> str:
    """The `X-BFL-Signature` value for `body` signed with `secret`."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return SIGNATURE_PREFIX + digest


class CallbackSigner:
    """Makes and checks callback tokens and webhook secrets with rotating keys."""

    def __init__(
        self,
        signing_keys: Sequence[Secret],
        *,
        max_age_s: int,
        clock: Clock = time.time,
    ) -> None:
        if not signing_keys:
            raise ValueError("at least one signing key is required")
        self._keys = tuple(key.reveal().encode() for key in signing_keys)
        self._max_age_s = max_age_s
        self._serializer = URLSafeTimedSerializer(
            # itsdangerous signs with the last key and verifies with all.
            secret_key=list(reversed(self._keys)),
            salt=TOKEN_SALT,
            signer=_signer_class(clock),
            signer_kwargs={"digest_method": hashlib.sha256},
        )

    def __repr__(self) -> str:
        return f"CallbackSigner(keys={len(self._keys)}, max_age_s={self._max_age_s})"

    def token(self, ref: JobRef, attempt: int) -> str:
        """A URL-safe token naming `ref` and `attempt`."""
        return self._serializer.dumps([ref.batch_id, ref.job_id, attempt])

    def claim(self, token: str) -> CallbackClaim:
        """Check a token's signature and age; raise `VerificationError` if either fails."""
        try:
            batch_id, job_id, attempt = self._serializer.loads(token, max_age=self._max_age_s)
        except (BadData, TypeError, ValueError) as error:
            raise VerificationError(f"bad callback token: {type(error).__name__}") from None
        if not (isinstance(batch_id, str) and isinstance(job_id, str) and _is_count(attempt)):
            raise VerificationError("callback token has a malformed payload")
        return CallbackClaim(JobRef(batch_id, job_id), attempt)

    def webhook_secret(self, ref: JobRef, attempt: int) -> str:
        """The secret the provider must echo for this job attempt (newest key)."""
        return self._derive(self._keys[0], ref, attempt)

    def verify(
        self,
        token: str,
        headers: Mapping[str, str],
        body: bytes,
        *,
        require_signature: bool = False,
    ) -> CallbackClaim:
        """Verify a callback from its URL token, headers (lower-case names) and raw body."""
        claim = self.claim(token)
        secret = self._matching_secret(claim, headers.get(SECRET_HEADER, ""))
        signature = headers.get(SIGNATURE_HEADER)
        if signature is None and require_signature:
            raise VerificationError("callback has no body signature", "signature")
        if signature is not None and not hmac.compare_digest(
            signature.strip().encode(), body_signature(secret, body).encode()
        ):
            raise VerificationError("callback body signature does not match", "signature")
        return claim

    def _matching_secret(self, claim: CallbackClaim, presented: str) -> str:
        # Compare against every key's secret, without stopping early, so timing does
        # not tell which key (if any) matched.
        match = ""
        for key in self._keys:
            candidate = self._derive(key, claim.ref, claim.attempt)
            if hmac.compare_digest(candidate.encode(), presented.encode()) and not match:
                match = candidate
        if not match:
            raise VerificationError("callback webhook secret does not match", "secret")
        return match

    @staticmethod
    def _derive(key: bytes, ref: JobRef, attempt: int) -> str:
        message = b"\0".join(
            (WEBHOOK_SECRET_CONTEXT, ref.batch_id.encode(), ref.job_id.encode(), b"%d" % attempt)
        )
        return hmac.new(key, message, hashlib.sha256).hexdigest()


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _signer_class(clock: Clock) -> type[TimestampSigner]:
    """A TimestampSigner whose notion of now is `clock`, so expiry is testable."""

    class ClockedSigner(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(clock())

    return ClockedSigner
