"""The tables the kit's own helpers write: the audit log (``kit/audit.py``), stored
idempotent responses (``kit/idempotency.py``), dead-letter jobs (``kit/jobs.py``) and
rate-limit windows (``kit/ratelimit.py``), with the common base of every record.

They are defined here, below the domains, so that the kit never imports
``outreach.models``; ``outreach.models`` re-exports them, and stays the one place
Alembic and the domains import tables from.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from outreach.kit.clock import utcnow
from outreach.kit.db import Base


class RecordModel(Base):
    """A table with a UUID primary key and a creation time."""

    __abstract__ = True

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class AuditLog(RecordModel):
    """Who did what to which thing, from where."""

    __tablename__ = "audit_logs"

    actor_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    action: Mapped[str] = mapped_column(String(100), index=True)
    target_type: Mapped[str | None] = mapped_column(String(50))
    target_id: Mapped[str | None] = mapped_column(String(100), index=True)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    ip: Mapped[str | None] = mapped_column(String(64))
    request_id: Mapped[str | None] = mapped_column(String(128))


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


class IdempotencyKey(RecordModel):
    """A stored response, replayed for a retried request with the same key."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("scope", "key"),)

    scope: Mapped[str] = mapped_column(String(300))  # caller + method + path
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    response_status: Mapped[int]
    response_body: Mapped[str] = mapped_column(Text)
    response_headers: Mapped[dict[str, Any]]
    expires_at: Mapped[datetime] = mapped_column(index=True)


class RateLimitBucket(Base):
    """A fixed-window counter, used when Redis is not configured."""

    __tablename__ = "rate_limit_buckets"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(primary_key=True)
    count: Mapped[int] = mapped_column(default=0)
