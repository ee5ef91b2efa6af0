from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from outreach.models.base import RecordModel


class VerificationStatus(enum.StrEnum):
    unverified = "unverified"
    deliverable = "deliverable"
    risky = "risky"
    undeliverable = "undeliverable"
    unknown = "unknown"


class Recipient(RecordModel):
    """One address on a user's list, normalised, with what the file said about it."""

    __tablename__ = "recipients"
    __table_args__ = (
        UniqueConstraint("list_id", "email"),
        Index("ix_recipients_list_id_position", "list_id", "position"),
    )

    list_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("recipient_lists.id", ondelete="CASCADE"))
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int]  # the row in the file (header = 1), or after it for added rows
    email: Mapped[str] = mapped_column(String(320), index=True)
    name: Mapped[str | None] = mapped_column(String(200))
    first_name: Mapped[str | None] = mapped_column(String(100))
    last_name: Mapped[str | None] = mapped_column(String(100))
    company: Mapped[str | None] = mapped_column(String(200))
    title: Mapped[str | None] = mapped_column(String(200))
    linkedin: Mapped[str | None] = mapped_column(String(500))
    website: Mapped[str | None] = mapped_column(String(500))
    timezone: Mapped[str | None] = mapped_column(String(64))
    custom_fields: Mapped[dict[str, Any]] = mapped_column(default=dict)
    source: Mapped[str] = mapped_column(String(20), default="upload")
    verification_status: Mapped[str] = mapped_column(
        String(20), default=VerificationStatus.unverified.value
    )
    verification_reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    verified_at: Mapped[datetime | None]
