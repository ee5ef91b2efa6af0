"""Signed tokens accept exactly the spelling they were issued with.

Base64 has other spellings of the same bytes: padding, characters the decoder
skips, and (in the last character) low bits that encode nothing. A token that
verifies under another spelling lets one link be written many ways; only the
canonical encoding is accepted (issue 17 item 5).
"""

from __future__ import annotations

import uuid

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.config import Settings
from outreach.kit.signing import (
    InvalidSignature,
    b64url_decode,
    b64url_encode,
    sign,
    unsign,
)
from outreach.kit.unsubscribe import make_unsubscribe_token, read_unsubscribe_token
from outreach.models.suppression import Suppression
from tests.conftest import create_user

SECRET = "signing-test-secret-key-0123456789-abcdef"
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def other_spellings(token: str) -> list[str]:
    """The same bytes written differently: each must be refused."""
    body, mac = token.split(".")
    last = _ALPHABET.index(mac[-1])
    # The MAC is 20 bytes: its 27th character carries 4 bits; the 2 low ones are spare.
    same_bits = [_ALPHABET[last ^ spare] for spare in (1, 2, 3)]
    return [
        f"{body}.{mac}==",
        f"{body}.{mac}=",
        f"{body}.{mac[:5]}!!{mac[5:]}",
        f"{body}.{mac[:5]}\n{mac[5:]}",
        *(f"{body}.{mac[:-1]}{char}" for char in same_bits),
        f"{body}==.{mac}",
        f"{body[:3]}!!{body[3:]}.{mac}",
    ]


class TestCanonicalBase64:
    @pytest.mark.parametrize("size", [0, 1, 2, 3, 19, 20, 21])
    def test_round_trip(self, size: int) -> None:
        data = bytes(range(size))
        assert b64url_decode(b64url_encode(data)) == data

    @pytest.mark.parametrize("text", ["QQ==", "QQ=", "Q!Q", "QR", "Q Q", "Q", "QQ\n", "Q+Q/"])
    def test_other_spellings_are_refused(self, text: str) -> None:
        with pytest.raises(ValueError):
            b64url_decode(text)


class TestSignedTokens:
    def test_the_issued_token_verifies(self) -> None:
        token = sign({"a": 1}, secret=SECRET, purpose="test")
        assert unsign(token, secret=SECRET, purpose="test") == {"a": 1}

    def test_every_other_spelling_is_refused(self) -> None:
        token = sign({"a": 1}, secret=SECRET, purpose="test")
        for spelling in other_spellings(token):
            with pytest.raises(InvalidSignature):
                unsign(spelling, secret=SECRET, purpose="test")

    def test_unsubscribe_token_other_spellings_are_refused(self) -> None:
        token = make_unsubscribe_token(secret=SECRET, sender_id=uuid.uuid4(), email="a@b.example")
        read_unsubscribe_token(token, secret=SECRET)
        for spelling in other_spellings(token):
            with pytest.raises(InvalidSignature):
                read_unsubscribe_token(spelling, secret=SECRET)


async def test_unsubscribe_link_works_only_as_issued(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """Through HTTP: every other spelling is 400 and suppresses nobody."""
    sender = await create_user(session, "sender@example.com")
    await session.flush()
    token = make_unsubscribe_token(
        secret=settings.secret_key.get_secret_value(), sender_id=sender.id, email="r@x.example"
    )
    for spelling in other_spellings(token):
        if "\n" in spelling:
            continue  # not a valid URL path; covered by the unit test above
        response = await client.post(f"/u/{spelling}", data={"List-Unsubscribe": "One-Click"})
        assert response.status_code == 400, spelling
        assert response.json()["code"] == "invalid_unsubscribe_link"
    count = select(func.count()).select_from(Suppression)
    assert await session.scalar(count) == 0
    response = await client.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"})
    assert response.status_code == 200
    assert await session.scalar(count) == 1
