"""How a deleted account is recognised.

A deleted account's row is kept (its ledger and payments must be), anonymised:
its email becomes ``<hash>@deleted.invalid``, where ``<hash>`` is a keyed HMAC
of the old address (``OUTREACH_SECRET_KEY``). ``.invalid`` is reserved
(RFC 2606), so no real address can take that form. The hash lets a later
sign-up with the same address be recognised without keeping the address: that
account gets no signup grant and cannot use a referral code (see
docs/architecture.md, "Account data rights").
"""

from __future__ import annotations

import hashlib
import hmac
import uuid

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.config import get_settings
from outreach.models import User

DELETED_DOMAIN = "deleted.invalid"


def _identity_hash(email: str) -> str:
    secret = get_settings().secret_key.get_secret_value().encode()
    normalised = email.strip().lower().encode()
    return hmac.new(secret, b"deleted-account:" + normalised, hashlib.sha256).hexdigest()[:40]


def deletion_marker(email: str) -> str:
    """The address a deleted account of ``email`` is kept under (the first one)."""
    return f"{_identity_hash(email)}@{DELETED_DOMAIN}"


def anonymised_email(email: str, user_id: uuid.UUID, *, first: bool) -> str:
    """The first deleted account of an address carries the marker; later ones (the
    same person deleting again) add their id, as emails are unique."""
    if first:
        return deletion_marker(email)
    return f"{_identity_hash(email)}.{user_id.hex[:12]}@{DELETED_DOMAIN}"


def is_deleted(user: User) -> bool:
    return user.email.endswith(f"@{DELETED_DOMAIN}")


def deleted_user_clause() -> ColumnElement[bool]:
    return User.email.like(f"%@{DELETED_DOMAIN}")


async def deleted_before(session: AsyncSession, email: str) -> bool:
    """Whether an account with ``email`` was deleted before (one indexed lookup)."""
    found = await session.scalar(select(User.id).where(User.email == deletion_marker(email)))
    return found is not None
