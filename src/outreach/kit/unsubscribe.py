"""Signed one-click unsubscribe tokens: who sent (the user) and who asked to stop.

``/u/{token}`` (the campaigns issue) verifies the token and suppresses the
address for that sender. Tokens do not expire: an unsubscribe link must keep
working for as long as the email sits in someone's inbox.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from outreach.kit.signing import InvalidSignature, compact_json, seal, unsign

PURPOSE = "unsubscribe"
# Stands for the address while the JSON around it is written once (spelled \u0000
# there, which no UUID holds).
_ADDRESS_SLOT = "\x00"


@dataclass(frozen=True)
class UnsubscribeRequest:
    sender_id: uuid.UUID
    email: str
    campaign_id: uuid.UUID | None


def unsubscribe_tokens(
    *, secret: str, sender_id: uuid.UUID, campaign_id: uuid.UUID | None = None
) -> Callable[[str], str]:
    """A function giving the token of address after address for one sender (and
    campaign): a campaign signs one per recipient, and only the address differs, so
    the JSON around it is written once. Each token is byte for byte what
    :func:`make_unsubscribe_token` gives."""
    payload = {"s": str(sender_id), "e": _ADDRESS_SLOT}
    if campaign_id is not None:
        payload["c"] = str(campaign_id)
    head, tail = compact_json(payload).split(json.dumps(_ADDRESS_SLOT))

    def token(email: str) -> str:
        return seal(head + json.dumps(email.lower()) + tail, secret=secret, purpose=PURPOSE)

    return token


def make_unsubscribe_token(
    *, secret: str, sender_id: uuid.UUID, email: str, campaign_id: uuid.UUID | None = None
) -> str:
    return unsubscribe_tokens(secret=secret, sender_id=sender_id, campaign_id=campaign_id)(email)


def read_unsubscribe_token(token: str, *, secret: str) -> UnsubscribeRequest:
    """Verify a token; raises :class:`InvalidSignature` when it was altered or forged."""
    payload = unsign(token, secret=secret, purpose=PURPOSE)
    try:
        return UnsubscribeRequest(
            sender_id=uuid.UUID(payload["s"]),
            email=str(payload["e"]),
            campaign_id=uuid.UUID(payload["c"]) if "c" in payload else None,
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise InvalidSignature("malformed unsubscribe token") from exc


def unsubscribe_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/u/{token}"
