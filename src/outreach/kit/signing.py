"""Signed, tamper-evident tokens (HMAC-SHA256 over a JSON payload).

Each token names its ``purpose`` so a token made for one use (an unsubscribe
link) is never accepted for another (an OAuth state). The key is derived from
``OUTREACH_SECRET_KEY`` per purpose.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from datetime import datetime
from functools import lru_cache
from typing import Any

from outreach.kit.clock import utcnow


class InvalidSignature(ValueError):
    """The token was altered, made for another purpose, or has expired."""


def b64url_encode(data: bytes) -> str:
    """Unpadded base64url: the one spelling every token of ours is written in."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    """The bytes of unpadded base64url ``text``; raises ValueError for any other spelling.

    Python's decoder skips characters outside the alphabet, takes extra padding
    and ignores the spare low bits of the last character, so several texts
    decode to the same bytes. Only the one :func:`b64url_encode` writes is
    accepted: decode, encode again, compare.
    """
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64url") from exc
    if b64url_encode(data) != text:
        raise ValueError("not the canonical base64url spelling")
    return data


@lru_cache(maxsize=64)
def _key(secret: str, purpose: str) -> bytes:
    return hmac.new(
        secret.encode(), f"outreach-signing:{purpose}".encode(), hashlib.sha256
    ).digest()


@lru_cache(maxsize=64)
def _keyed(secret: str, purpose: str) -> hmac.HMAC:
    return hmac.new(_key(secret, purpose), digestmod=hashlib.sha256)


def _mac(message: bytes, *, secret: str, purpose: str) -> bytes:
    """HMAC-SHA256 of ``message`` under the purpose's key, from a copy of the keyed state
    (a schedule signs a token per recipient; keying anew each time costs twice as much)."""
    mac = _keyed(secret, purpose).copy()
    mac.update(message)
    return mac.digest()


def keyed_digest(message: str, *, secret: str, purpose: str) -> str:
    """An HMAC of ``message`` under the purpose's key (base64url): a value only the
    holder of the secret can derive from ``message``."""
    return b64url_encode(_mac(message.encode(), secret=secret, purpose=purpose))


def sign(
    payload: dict[str, Any], *, secret: str, purpose: str, expires_at: datetime | None = None
) -> str:
    """A URL-safe token carrying ``payload``; verify it with :func:`unsign`."""
    body = dict(payload)
    if expires_at is not None:
        body["_exp"] = int(expires_at.timestamp())
    return seal(compact_json(body), secret=secret, purpose=purpose)


def compact_json(payload: dict[str, Any]) -> str:
    """``payload`` as every token writes it: compact, keys sorted, ASCII only."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True)


def seal(payload_json: str, *, secret: str, purpose: str) -> str:
    """The token of a payload already written by :func:`compact_json` (a caller signing
    many payloads of one shape writes the shared part once); :func:`unsign` reads it."""
    encoded = b64url_encode(payload_json.encode())
    mac = _mac(encoded.encode(), secret=secret, purpose=purpose)[:20]
    return f"{encoded}.{b64url_encode(mac)}"


def unsign(token: str, *, secret: str, purpose: str) -> dict[str, Any]:
    """The payload of a token made by :func:`sign` for ``purpose``; raises InvalidSignature."""
    try:
        encoded, mac = token.split(".", 1)
        expected = _mac(encoded.encode(), secret=secret, purpose=purpose)[:20]
        if not hmac.compare_digest(b64url_decode(mac), expected):
            raise InvalidSignature("bad signature")
        payload = json.loads(b64url_decode(encoded))
    except (ValueError, UnicodeError) as exc:
        raise InvalidSignature("malformed token") from exc
    if not isinstance(payload, dict):
        raise InvalidSignature("malformed token")
    expires = payload.pop("_exp", None)
    if expires is not None and utcnow().timestamp() > expires:
        raise InvalidSignature("expired token")
    return payload
