from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, Enum, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from outreach.kit.clock import utcnow
from outreach.models.base import RecordModel


class MailboxProvider(enum.StrEnum):
    gmail = "gmail"
    smtp = "smtp"
    outbox = "outbox"


class MailboxMode(enum.StrEnum):
    full = "full"  # gmail.compose + gmail.metadata: drafts, and sends can be confirmed
    send_only = "send_only"  # gmail.send: messages.send only, outcomes cannot be read back


class MailboxStatus(enum.StrEnum):
    active = "active"
    revoked = "revoked"  # the user (or Google) withdrew our access: reconnect
    error = "error"  # the last check failed for another reason


class SmtpSecurity(enum.StrEnum):
    starttls = "starttls"
    tls = "tls"  # implicit TLS (port 465)
    none = "none"  # development only


def _enum(kind: type[enum.StrEnum]) -> Enum:
    return Enum(kind, native_enum=False, length=20)


class Mailbox(RecordModel):
    """A way to send mail for a user: a Gmail account, an SMTP login, or the file outbox.

    Secrets (refresh and access tokens, SMTP password) are stored encrypted
    (kit.crypto) and never leave the service.
    """

    __tablename__ = "mailboxes"
    __table_args__ = (
        UniqueConstraint("user_id", "address", "provider"),
        CheckConstraint("daily_cap BETWEEN 1 AND 2000", name="daily_cap_range"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    provider: Mapped[MailboxProvider] = mapped_column(_enum(MailboxProvider))
    mode: Mapped[MailboxMode | None] = mapped_column(_enum(MailboxMode))
    address: Mapped[str] = mapped_column(String(320))
    display_name: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[MailboxStatus] = mapped_column(
        _enum(MailboxStatus), default=MailboxStatus.active
    )
    status_reason: Mapped[str | None] = mapped_column(String(500))
    status_changed_at: Mapped[datetime | None]
    google_sub: Mapped[str | None] = mapped_column(String(255))
    refresh_token_encrypted: Mapped[str | None] = mapped_column(Text)
    access_token_encrypted: Mapped[str | None] = mapped_column(Text)
    access_token_expires_at: Mapped[datetime | None]
    granted_scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    daily_cap: Mapped[int] = mapped_column(default=250)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    signature: Mapped[str | None] = mapped_column(Text)
    smtp_host: Mapped[str | None] = mapped_column(String(255))
    smtp_port: Mapped[int | None]
    smtp_security: Mapped[SmtpSecurity | None] = mapped_column(_enum(SmtpSecurity))
    smtp_username: Mapped[str | None] = mapped_column(String(320))
    smtp_password_encrypted: Mapped[str | None] = mapped_column(Text)
    last_verified_at: Mapped[datetime | None]
    sending_deferred_until: Mapped[datetime | None]  # Gmail's dailyLimitExceeded
    # Reply and bounce checking (full-mode Gmail): where users.history.list resumes.
    history_id: Mapped[str | None] = mapped_column(String(30))
    inbox_checked_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
