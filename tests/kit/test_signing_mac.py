"""Tokens keep their exact bytes: the MAC is HMAC-SHA256 under the purpose's key."""

from __future__ import annotations

import hashlib
import hmac

from outreach.kit.signing import b64url_encode, keyed_digest, sign, unsign


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
