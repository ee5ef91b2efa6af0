from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from outreach.models.base import RecordModel


class VerificationJobKind(enum.StrEnum):
    verify = "verify"
    enrich = "enrich"
    directory_refresh = "directory_refresh"


class VerificationJobStatus(enum.StrEnum):
    queued = "queued"
    running = "running"
    completed = "completed"
    failed = "failed"


class VerificationJob(RecordModel):
    """A bulk verification or enrichment run: what it covers, its progress and credits."""

    __tablename__ = "verification_jobs"

    user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default=VerificationJobStatus.queued.value)
    list_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("recipient_lists.id", ondelete="SET NULL")
    )
    total: Mapped[int] = mapped_column(default=0)
    done: Mapped[int] = mapped_column(default=0)
    credits_charged: Mapped[int] = mapped_column(default=0)
    credits_refunded: Mapped[int] = mapped_column(default=0)
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    input: Mapped[dict[str, Any]] = mapped_column(default=dict)
    results: Mapped[list[Any]] = mapped_column(JSON, default=list)
    cursor: Mapped[str | None] = mapped_column(String(320))  # last address done (list runs)
    # The ledger key of the job's debit (``verify:bulk:<user>:<key>``, as stored): one job
    # per key, and its settlement refunds at most what that debit took. None: no charge.
    charge_key: Mapped[str | None] = mapped_column(String(300), index=True, unique=True)
    error: Mapped[str | None] = mapped_column(Text)
    finished_at: Mapped[datetime | None]


class EmailVerification(RecordModel):
    """The result of checking one address (``pending`` until a bulk job reaches it)."""

    __tablename__ = "email_verifications"
    __table_args__ = (
        UniqueConstraint("job_id", "email"),
        Index("ix_email_verifications_user_id_email", "user_id", "email"),
        # Each row is inserted pending and updated once with its result: room on the
        # page makes that update HOT (no new index entries). Migration 3f5b9e2c7a10.
        {"postgresql_with": {"fillfactor": 50}},
    )

    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    job_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("verification_jobs.id", ondelete="CASCADE")
    )
    email: Mapped[str] = mapped_column(String(320))
    domain: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(20))
    reasons: Mapped[list[str]] = mapped_column(JSON, default=list)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    verified_at: Mapped[datetime | None]
