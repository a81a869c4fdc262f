import pickle

import pytest

from pipeline.errors import VerificationError
from pipeline.models import JobRef
from pipeline.settings import Secret
from pipeline.signing import CallbackSigner, body_signature

pytestmark = pytest.mark.timeout(10)

NEW_KEY = Secret("n" * 40)
OLD_KEY = Secret("o" * 40)
REF = JobRef("b20261124-abcd", "mug 01:ü")
MAX_AGE_S = 3600


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def signer(keys=(NEW_KEY,), clock=None) -> CallbackSigner:
    return CallbackSigner(list(keys), max_age_s=MAX_AGE_S, clock=clock or Clock())


def headers_for(s: CallbackSigner, ref=REF, attempt=1, body=b"{}", signed=False):
    headers = {"x-webhook-secret": s.webhook_secret(ref, attempt)}
    if signed:
        headers["x-bfl-signature"] = body_signature(headers["x-webhook-secret"], body)
    return headers


def test_round_trip_names_job_and_attempt():
    s = signer()
    claim = s.verify(s.token(REF, 3), headers_for(s, attempt=3), b"{}")
    assert (claim.ref, claim.attempt) == (REF, 3)


def test_wrong_secret_is_rejected():
    s = signer()
    with pytest.raises(VerificationError):
        s.verify(s.token(REF, 1), {"x-webhook-secret": "nope"}, b"{}")
    with pytest.raises(VerificationError):
        s.verify(s.token(REF, 1), {}, b"{}")


def test_secret_of_another_attempt_is_rejected():
    s = signer()
    with pytest.raises(VerificationError):
        s.verify(s.token(REF, 2), headers_for(s, attempt=1), b"{}")


def test_tampered_token_is_rejected():
    s = signer()
    token = s.token(REF, 1)
    forged = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    with pytest.raises(VerificationError):
        s.verify(forged, headers_for(s), b"{}")
    with pytest.raises(VerificationError):
        s.verify("not-a-token", headers_for(s), b"{}")


def test_token_from_another_key_is_rejected():
    other = signer(keys=(Secret("x" * 40),))
    with pytest.raises(VerificationError):
        signer().verify(other.token(REF, 1), headers_for(other), b"{}")


def test_expired_token_is_rejected():
    clock = Clock()
    s = signer(clock=clock)
    token = s.token(REF, 1)
    clock.now += MAX_AGE_S + 1
    with pytest.raises(VerificationError):
        s.verify(token, headers_for(s), b"{}")


def test_rotation_old_key_still_verifies_new_key_signs():
    before = signer(keys=(OLD_KEY,))
    token, headers = before.token(REF, 1), headers_for(before)
    rotated = signer(keys=(NEW_KEY, OLD_KEY))
    assert rotated.verify(token, headers, b"{}").attempt == 1
    assert rotated.webhook_secret(REF, 1) == signer(keys=(NEW_KEY,)).webhook_secret(REF, 1)
    with pytest.raises(VerificationError):
        before.verify(rotated.token(REF, 1), headers, b"{}")


def test_body_signature_checked_when_present_or_required():
    s = signer()
    body = b'{"status":"Ready"}'
    token = s.token(REF, 1)
    assert s.verify(token, headers_for(s, body=body, signed=True), body).attempt == 1
    with pytest.raises(VerificationError):
        s.verify(token, headers_for(s, body=body, signed=True), body + b" ")
    with pytest.raises(VerificationError):
        s.verify(token, headers_for(s), body, require_signature=True)


def test_repr_shows_no_key():
    assert "n" * 40 not in repr(signer())


def test_a_verification_error_names_its_check_and_pickles():
    error = VerificationError("callback webhook secret does not match", "secret")

    again = pickle.loads(pickle.dumps(error))

    assert (str(again), again.reason) == ("callback webhook secret does not match", "secret")
    assert VerificationError("bad callback token: BadSignature").reason == "token"
