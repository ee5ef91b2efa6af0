from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from outreach.models.base import RecordModel


class FailedJob(RecordModel):
    """A background job that failed its last attempt (the dead-letter list)."""

    __tablename__ = "failed_jobs"

    task_name: Mapped[str] = mapped_column(String(200), index=True)
    task_id: Mapped[str] = mapped_column(String(64))
    args: Mapped[dict[str, Any]]
    error: Mapped[str] = mapped_column(Text)
    traceback: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int]
    retried_at: Mapped[datetime | None]
