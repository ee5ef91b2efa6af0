from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from outreach.kit.clock import utcnow
from outreach.models.base import RecordModel


class Template(RecordModel):
    """A user's email template; its content lives in numbered, immutable versions."""

    __tablename__ = "templates"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    current_version: Mapped[int] = mapped_column(default=1)
    source: Mapped[str] = mapped_column(
        String(40), default="manual"
    )  # manual | built-in | llm:<model>
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    deleted_at: Mapped[datetime | None]


class TemplateVersion(RecordModel):
    """One saved state of a template. Scheduled emails point at a version, so editing
    the template later never changes what was scheduled."""

    __tablename__ = "template_versions"
    __table_args__ = (UniqueConstraint("template_id", "version"),)

    template_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("templates.id", ondelete="CASCADE"), index=True
    )
    version: Mapped[int]
    subject: Mapped[str] = mapped_column(String(1000))
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str | None] = mapped_column(Text)
    variables: Mapped[list[str]] = mapped_column(JSON)
    required_variables: Mapped[list[str]] = mapped_column(JSON)
