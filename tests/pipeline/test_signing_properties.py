"""Property tests: whatever arrives, the verifier answers with a claim or one error type."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.errors import VerificationError
from pipeline.models import JobRef
from pipeline.settings import Secret
from pipeline.signing import CallbackSigner, body_signature

pytestmark = pytest.mark.timeout(60)

SIGNER = CallbackSigner([Secret("p" * 40)], max_age_s=3600, clock=lambda: 1_900_000_000.0)
REF = JobRef("b20261124-0000", "job")
TOKEN = SIGNER.token(REF, 1)
SECRET = SIGNER.webhook_secret(REF, 1)

header_text = st.text(max_size=200)


@settings(max_examples=300, deadline=None)
@given(
    token=st.text(max_size=300),
    secret=header_text,
    signature=st.none() | header_text,
    body=st.binary(max_size=500),
)
def test_arbitrary_input_yields_a_claim_or_verification_error(token, secret, signature, body):
    headers = {"x-webhook-secret": secret}
    if signature is not None:
        headers["x-bfl-signature"] = signature
    try:
        claim = SIGNER.verify(token, headers, body)
    except VerificationError:
        return
    # Accepted only with a genuine token and secret (and a correct signature if sent).
    assert (claim.ref, claim.attempt) == (REF, 1)
    assert token == TOKEN and secret == SECRET


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=500), flip=st.integers(min_value=0, max_value=499))
def test_any_change_to_a_signed_body_is_refused(body, flip):
    headers = {"x-webhook-secret": SECRET, "x-bfl-signature": body_signature(SECRET, body)}
    assert SIGNER.verify(TOKEN, headers, body).attempt == 1
    if body:
        index = flip % len(body)
        tampered = body[:index] + bytes([body[index] ^ 0x01]) + body[index + 1 :]
        with pytest.raises(VerificationError):
            SIGNER.verify(TOKEN, headers, tampered)


@settings(max_examples=200, deadline=None)
@given(position=st.integers(min_value=0), char=st.characters(codec="ascii"))
def test_any_single_character_change_to_a_token_is_refused(position, char):
    # The last character is excluded: base64 leaves its low bits unused, so some changes
    # there decode to the very same signature bytes (not a forgery). So are '+' for '-'
    # and '/' for '_': itsdangerous decodes both alphabets of base64 alike.
    index = position % (len(TOKEN) - 1)
    forged = TOKEN[:index] + char + TOKEN[index + 1 :]
    if forged.replace("+", "-").replace("/", "_") == TOKEN:
        return
    with pytest.raises(VerificationError):
        SIGNER.verify(forged, {"x-webhook-secret": SECRET}, b"{}")
