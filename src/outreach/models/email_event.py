from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import Enum, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from outreach.models.base import RecordModel


class EmailEventKind(enum.StrEnum):
    replied = "replied"  # a person answered in the thread: the sequence stops
    auto_reply = "auto_reply"  # out of office and the like: recorded, the sequence goes on
    bounced = "bounced"  # a delivery failure for the address: the sequence stops
    unsubscribed = "unsubscribed"  # the recipient used the unsubscribe link


class EmailEventSource(enum.StrEnum):
    gmail = "gmail"  # found by the reply check in the mailbox
    smtp = "smtp"  # the SMTP server refused the recipient (5xx)
    manual = "manual"  # the user marked it by hand
    unsubscribe = "unsubscribe"  # the unsubscribe link


def _enum(kind: type[enum.StrEnum]) -> Enum:
    return Enum(kind, native_enum=False, length=20)


class EmailEvent(RecordModel):
    """Something that came back for a campaign email: a reply, an auto-reply, a bounce or
    an unsubscribe. Stored once per source item (``dedupe_key``: Gmail's message id,
    or the kind of hand-made record), so reading the same history twice adds nothing."""

    __tablename__ = "email_events"
    __table_args__ = (UniqueConstraint("scheduled_email_id", "kind", "dedupe_key"),)

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    campaign_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), index=True
    )
    scheduled_email_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("scheduled_emails.id", ondelete="CASCADE"), index=True
    )
    recipient_address: Mapped[str] = mapped_column(String(320))
    kind: Mapped[EmailEventKind] = mapped_column(_enum(EmailEventKind))
    source: Mapped[EmailEventSource] = mapped_column(_enum(EmailEventSource))
    dedupe_key: Mapped[str] = mapped_column(String(200))
    occurred_at: Mapped[datetime]
    detail: Mapped[str | None] = mapped_column(String(500))
