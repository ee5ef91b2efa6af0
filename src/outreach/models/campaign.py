from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from outreach.kit.clock import utcnow
from outreach.models.base import RecordModel


class CampaignStatus(enum.StrEnum):
    draft = "draft"
    scheduled = "scheduled"  # emails planned; drafts being prepared or waiting
    sending = "sending"  # at least one email sent, more to go
    paused = "paused"
    completed = "completed"
    cancelled = "cancelled"


class Campaign(RecordModel):
    """One outreach: a template sent from a mailbox to a list, inside a sending window."""

    __tablename__ = "campaigns"
    __table_args__ = (
        CheckConstraint("daily_cap IS NULL OR daily_cap BETWEEN 1 AND 2000", name="daily_cap"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[CampaignStatus] = mapped_column(
        Enum(CampaignStatus, native_enum=False, length=20), default=CampaignStatus.draft, index=True
    )
    mailbox_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("mailboxes.id", ondelete="RESTRICT"))
    template_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("templates.id", ondelete="RESTRICT"))
    template_version: Mapped[int | None]  # fixed when scheduled
    list_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("recipient_lists.id", ondelete="SET NULL")
    )
    recipient_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    start_at: Mapped[datetime]
    timezone: Mapped[str | None] = mapped_column(String(64))  # None: the mailbox's
    window_days: Mapped[list[int]] = mapped_column(JSON, default=lambda: [0, 1, 2, 3, 4])
    window_start: Mapped[str] = mapped_column(String(5), default="09:00")
    window_end: Mapped[str] = mapped_column(String(5), default="17:00")
    daily_cap: Mapped[int | None]  # None: the mailbox's cap
    min_gap_seconds: Mapped[int] = mapped_column(default=120)
    jitter_seconds: Mapped[int] = mapped_column(default=60)
    use_recipient_timezone: Mapped[bool] = mapped_column(default=False)
    # None: off. evaluates_none(): the ORM writes an explicit None as NULL instead of
    # dropping it and applying the default (which stored ``company_cap: null`` as 2).
    company_cap: Mapped[int | None] = mapped_column(Integer().evaluates_none(), default=2)
    skip_recently_emailed_days: Mapped[int] = mapped_column(default=30)
    review_mode: Mapped[bool] = mapped_column(default=False)
    attach_resume: Mapped[bool] = mapped_column(default=False)
    resume_id: Mapped[uuid.UUID | None]
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Follow-ups through a mailbox that cannot read replies (SMTP, send-only Gmail)
    # go out only when the user said so; an auto-reply stops the sequence only if asked.
    followups_without_reply_detection: Mapped[bool] = mapped_column(
        default=False, server_default=false()
    )
    stop_on_auto_reply: Mapped[bool] = mapped_column(default=False, server_default=false())
    paused_reason: Mapped[str | None] = mapped_column(String(300))
    scheduled_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class CampaignStep(RecordModel):
    """A follow-up of a campaign: position 1..3 (the first email, step 0, is the campaign's
    own template), sent ``delay_business_days`` after the previous step went out."""

    __tablename__ = "campaign_steps"
    __table_args__ = (
        UniqueConstraint("campaign_id", "position"),
        CheckConstraint("position BETWEEN 1 AND 3", name="position_range"),
        CheckConstraint("delay_business_days BETWEEN 1 AND 14", name="delay_range"),
    )

    campaign_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int]
    template_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("templates.id", ondelete="RESTRICT"))
    template_version: Mapped[int | None]  # fixed when scheduled
    delay_business_days: Mapped[int] = mapped_column(default=4)
    use_own_subject: Mapped[bool] = mapped_column(default=False)  # else "Re: " + first subject


class EmailStatus(enum.StrEnum):
    waiting = "waiting"  # a follow-up whose previous step is not sent yet
    pending = "pending"  # planned, not yet prepared
    ready = "ready"  # Gmail draft created, or everything needed to send is stored
    awaiting_approval = "awaiting_approval"  # review mode
    sending = "sending"  # claimed under a lease
    sent = "sent"
    failed = "failed"  # credit refunded
    cancelled = "cancelled"  # credit refunded
    skipped = "skipped"  # suppressed before sending; credit refunded
    unknown = "unknown"  # outcome cannot be checked; never resent, not refunded


FINAL_EMAIL_STATUSES = frozenset(
    {
        EmailStatus.sent,
        EmailStatus.failed,
        EmailStatus.cancelled,
        EmailStatus.skipped,
        EmailStatus.unknown,
    }
)


class ScheduledEmail(RecordModel):
    """One email of a campaign, from planning to its single final outcome."""

    __tablename__ = "scheduled_emails"
    __table_args__ = (Index("ix_scheduled_emails_mailbox_thread", "mailbox_id", "thread_id"),)

    campaign_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    mailbox_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("mailboxes.id", ondelete="RESTRICT"), index=True
    )
    recipient_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("recipients.id", ondelete="SET NULL")
    )
    to_address: Mapped[str] = mapped_column(String(320))
    to_name: Mapped[str | None] = mapped_column(String(200))
    company_domain: Mapped[str | None] = mapped_column(String(255), index=True)
    status: Mapped[EmailStatus] = mapped_column(
        Enum(EmailStatus, native_enum=False, length=20), default=EmailStatus.pending, index=True
    )
    due_at: Mapped[datetime] = mapped_column(index=True)
    subject: Mapped[str] = mapped_column(String(1000))
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str | None] = mapped_column(Text)
    # The encoded message, stored when it is prepared for providers without drafts
    # (send-only Gmail, SMTP) and cleared once sent. Never loaded unless asked for.
    mime: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True, deferred_raiseload=True)
    rfc822_message_id: Mapped[str] = mapped_column(String(300), unique=True)
    draft_id: Mapped[str | None] = mapped_column(String(200))
    provider_message_id: Mapped[str | None] = mapped_column(String(200))
    thread_id: Mapped[str | None] = mapped_column(String(200))
    attempts: Mapped[int] = mapped_column(default=0)
    # ready: not claimed before this; pending: when the sweep next makes sure it is prepared.
    next_attempt_at: Mapped[datetime | None]
    # Set at the first failure that left nothing sent: retried until then, then failed.
    retry_deadline: Mapped[datetime | None]
    lease_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(1000))
    sent_at: Mapped[datetime | None] = mapped_column(index=True)
    refunded: Mapped[bool] = mapped_column(default=False)
    # Follow-ups: the step (0 is the first email), the email it answers, and the
    # threading headers it is written with (set when the previous step is sent).
    step: Mapped[int] = mapped_column(default=0, server_default="0")
    previous_email_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("scheduled_emails.id", ondelete="SET NULL"), index=True
    )
    in_reply_to: Mapped[str | None] = mapped_column(String(300))
    reference_ids: Mapped[str | None] = mapped_column(Text)  # the References header's ids
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
