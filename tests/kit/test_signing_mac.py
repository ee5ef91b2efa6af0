"""Tokens keep their exact bytes: the MAC is HMAC-SHA256 under the purpose's key."""

from __future__ import annotations

import hashlib
import hmac
import uuid

from hypothesis import given, settings
from hypothesis import strategies as st

from outreach.kit.signing import b64url_encode, keyed_digest, sign, unsign
from outreach.kit.unsubscribe import (
    make_unsubscribe_token,
    read_unsubscribe_token,
    unsubscribe_tokens,
)


def _expected_mac(secret: str, purpose: str, message: bytes) -> bytes:
    key = hmac.new(secret.encode(), f"outreach-signing:{purpose}".encode(), hashlib.sha256).digest()
    return hmac.new(key, message, hashlib.sha256).digest()


def test_a_token_carries_the_hmac_of_its_payload() -> None:
    token = sign({"e": "a@example.com", "s": "x"}, secret="s" * 40, purpose="unsubscribe")
    encoded, mac = token.split(".")
    expected = _expected_mac("s" * 40, "unsubscribe", encoded.encode())[:20]
    assert mac == b64url_encode(expected)
    assert unsign(token, secret="s" * 40, purpose="unsubscribe") == {
        "e": "a@example.com",
        "s": "x",
    }


def test_many_tokens_in_a_row_each_get_their_own_mac() -> None:
    tokens = [sign({"n": n}, secret="k" * 40, purpose="p") for n in range(50)]
    for n, token in enumerate(tokens):
        encoded, mac = token.split(".")
        assert mac == b64url_encode(_expected_mac("k" * 40, "p", encoded.encode())[:20])
        assert unsign(token, secret="k" * 40, purpose="p") == {"n": n}


def test_keyed_digest_is_the_full_hmac() -> None:
    expected = b64url_encode(_expected_mac("k" * 40, "p", b"message"))
    assert keyed_digest("message", secret="k" * 40, purpose="p") == expected


@settings(max_examples=300)
@given(email=st.text(), with_campaign=st.booleans())
def test_unsubscribe_tokens_are_what_signing_the_payload_gives(
    email: str, with_campaign: bool
) -> None:
    """The per-campaign token function writes the JSON around the address once; every
    token must still be exactly the signed payload, whatever the address holds
    (quotes, backslashes, NULs, non-ASCII, surrogates)."""
    sender_id, campaign_id = uuid.uuid4(), (uuid.uuid4() if with_campaign else None)
    payload = {"s": str(sender_id), "e": email.lower()}
    if campaign_id is not None:
        payload["c"] = str(campaign_id)
    expected = sign(payload, secret="u" * 40, purpose="unsubscribe")
    tokens = unsubscribe_tokens(secret="u" * 40, sender_id=sender_id, campaign_id=campaign_id)
    assert tokens(email) == expected
    assert (
        make_unsubscribe_token(
            secret="u" * 40, sender_id=sender_id, email=email, campaign_id=campaign_id
        )
        == expected
    )
    request = read_unsubscribe_token(expected, secret="u" * 40)
    assert (request.sender_id, request.email, request.campaign_id) == (
        sender_id,
        email.lower(),
        campaign_id,
    )
