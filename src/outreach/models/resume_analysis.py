from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from outreach.models.base import RecordModel


class ResumeAnalysis(RecordModel):
    """One ATS-style report on a resume; ``free`` ones count against the monthly quota."""

    __tablename__ = "resume_analyses"
    __table_args__ = (
        Index("ix_resume_analyses_user_id_created_at", "user_id", "created_at"),
        Index("ix_resume_analyses_resume_id_created_at", "resume_id", "created_at"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    resume_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("resumes.id", ondelete="CASCADE"))
    rubric_version: Mapped[str] = mapped_column(String(20))
    score: Mapped[int | None]  # None when the parse was too unreliable to score
    target_role: Mapped[str | None] = mapped_column(String(200))
    job_description_sha256: Mapped[str | None] = mapped_column(String(64))
    free: Mapped[bool]
    credits_charged: Mapped[int]
    writer: Mapped[str] = mapped_column(String(120))  # "built-in" or "llm:<model>"
    report: Mapped[dict[str, Any]]
