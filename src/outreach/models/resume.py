from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from outreach.models.base import RecordModel


class Resume(RecordModel):
    """An uploaded resume: the file (in storage, under a random key) and what was read from it."""

    __tablename__ = "resumes"
    __table_args__ = (Index("ix_resumes_user_id_created_at", "user_id", "created_at"),)

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    file_key: Mapped[str] = mapped_column(String(300), unique=True)
    file_name: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(10))  # pdf | docx, decided by content
    size_bytes: Mapped[int]
    sha256: Mapped[str] = mapped_column(String(64))
    page_count: Mapped[int | None]
    text: Mapped[str] = mapped_column(Text)
    sections: Mapped[dict[str, Any]]  # section name → its text
    contact: Mapped[dict[str, Any]]  # name, email, phone, linkedin, github, ...
    skills: Mapped[list[str]] = mapped_column(JSON, default=list)
    years_experience: Mapped[float | None]
    layout: Mapped[dict[str, Any]]  # what the parser noticed: tables, images, columns, ...
