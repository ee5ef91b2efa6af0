"""Signed one-click unsubscribe tokens: who sent (the user) and who asked to stop.

``/u/{token}`` (the campaigns issue) verifies the token and suppresses the
address for that sender. Tokens do not expire: an unsubscribe link must keep
working for as long as the email sits in someone's inbox.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from outreach.kit.signing import InvalidSignature, sign, unsign

PURPOSE = "unsubscribe"


@dataclass(frozen=True)
class UnsubscribeRequest:
    sender_id: uuid.UUID
    email: str
    campaign_id: uuid.UUID | None


def make_unsubscribe_token(
    *, secret: str, sender_id: uuid.UUID, email: str, campaign_id: uuid.UUID | None = None
) -> str:
    payload = {"s": str(sender_id), "e": email.lower()}
    if campaign_id is not None:
        payload["c"] = str(campaign_id)
    return sign(payload, secret=secret, purpose=PURPOSE)


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
