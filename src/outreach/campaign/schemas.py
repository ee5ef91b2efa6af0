from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StrictBool, StrictInt, field_validator

from outreach.kit.schemas import IsoDateTime
from outreach.models.campaign import CampaignStatus, EmailStatus

HourMinute = Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$", examples=["09:00"])]
Weekday = Annotated[StrictInt, Field(ge=0, le=6)]


class StepIn(BaseModel):
    """A follow-up: its template, and how many business days after the step before it."""

    template_id: uuid.UUID
    delay_business_days: StrictInt = Field(
        default=4, ge=1, le=14, description="Business days (the window's weekdays) to wait"
    )
    use_own_subject: StrictBool = Field(
        default=False,
        description="Use the template's subject; default: 'Re: ' + the first email's subject "
        "(Gmail keeps a message in the thread only under the same subject)",
    )


class StepOut(StepIn):
    position: int = Field(description="1 to 3; step 0 is the first email")
    template_version: int | None


class CampaignSettings(BaseModel):
    start_at: IsoDateTime | None = Field(default=None, description="Default: now")
    timezone: str | None = Field(default=None, max_length=64, description="Default: the mailbox's")
    window_days: list[Weekday] = Field(
        default=[0, 1, 2, 3, 4], min_length=1, description="0 = Monday … 6 = Sunday"
    )
    window_start: HourMinute = "09:00"
    window_end: HourMinute = "17:00"
    daily_cap: StrictInt | None = Field(
        default=None, ge=1, le=2000, description="Default: the mailbox's"
    )
    min_gap_seconds: StrictInt = Field(default=120, ge=0, le=86_400)
    jitter_seconds: StrictInt = Field(default=60, ge=0, le=3600)
    use_recipient_timezone: StrictBool = Field(
        default=False,
        description="Send in each recipient's business hours when the list has a time zone",
    )
    company_cap: StrictInt | None = Field(
        default=2,
        ge=1,
        le=100,
        description="At most N emails per company domain per 7 days; null: off",
    )
    skip_recently_emailed_days: StrictInt = Field(default=30, ge=0, le=365)
    review_mode: StrictBool = Field(default=False, description="Emails wait for your approval")
    attach_resume: StrictBool = Field(
        default=False, description="Attach your latest resume as uploaded"
    )
    steps: list[StepIn] = Field(
        default_factory=list,
        max_length=3,
        description="Up to 3 follow-ups, sent in the first email's thread; each stops for a "
        "recipient who replies, bounces or unsubscribes (and is refunded)",
    )
    followups_without_reply_detection: StrictBool = Field(
        default=False,
        description="Send follow-ups through a mailbox that cannot see replies (SMTP, "
        "send-only Gmail); without it such a campaign's steps are refused with a 422",
    )
    stop_on_auto_reply: StrictBool = Field(
        default=False, description="An out-of-office answer also stops the follow-ups"
    )

    @field_validator("window_days")
    @classmethod
    def _days(cls, value: list[int]) -> list[int]:
        if not value or any(d < 0 or d > 6 for d in value):
            raise ValueError("give at least one weekday, 0 (Monday) to 6 (Sunday)")
        return sorted(set(value))


class CampaignCreate(CampaignSettings):
    name: str = Field(min_length=1, max_length=200)
    mailbox_id: uuid.UUID
    template_id: uuid.UUID
    list_id: uuid.UUID | None = None
    recipient_ids: list[uuid.UUID] = Field(default_factory=list, max_length=10_000)


class CampaignUpdate(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    mailbox_id: uuid.UUID | None = None
    template_id: uuid.UUID | None = None
    list_id: uuid.UUID | None = None
    start_at: IsoDateTime | None = None
    timezone: str | None = Field(default=None, max_length=64)
    window_days: list[Weekday] | None = Field(default=None, min_length=1)
    window_start: HourMinute | None = None
    window_end: HourMinute | None = None
    daily_cap: StrictInt | None = Field(default=None, ge=1, le=2000)
    min_gap_seconds: StrictInt | None = Field(default=None, ge=0, le=86_400)
    jitter_seconds: StrictInt | None = Field(default=None, ge=0, le=3600)
    use_recipient_timezone: StrictBool | None = None
    company_cap: StrictInt | None = Field(default=None, ge=1, le=100)
    skip_recently_emailed_days: StrictInt | None = Field(default=None, ge=0, le=365)
    review_mode: StrictBool | None = None
    attach_resume: StrictBool | None = None
    steps: list[StepIn] | None = Field(default=None, max_length=3, description="Replaces them")
    followups_without_reply_detection: StrictBool | None = None
    stop_on_auto_reply: StrictBool | None = None


class EmailCounts(BaseModel):
    total: int = 0
    waiting: int = 0  # follow-ups whose previous step is not sent yet
    pending: int = 0
    ready: int = 0
    awaiting_approval: int = 0
    sending: int = 0
    sent: int = 0
    failed: int = 0
    cancelled: int = 0
    skipped: int = 0
    unknown: int = 0


class EmailError(BaseModel):
    """The latest problem of one of the campaign's emails: a final failure, or the
    reason of a retry still planned (``retry_at``)."""

    email_id: uuid.UUID
    to_address: str
    status: EmailStatus
    error: str
    at: datetime = Field(description="When the email last changed")
    retry_at: datetime | None = Field(
        description="The next try, while the email is still being retried"
    )


class CampaignOut(BaseModel):
    id: uuid.UUID
    name: str
    status: CampaignStatus
    mailbox_id: uuid.UUID
    template_id: uuid.UUID
    template_version: int | None
    list_id: uuid.UUID | None
    start_at: datetime
    timezone: str | None
    window_days: list[int]
    window_start: str
    window_end: str
    daily_cap: int | None
    min_gap_seconds: int
    jitter_seconds: int
    use_recipient_timezone: bool
    company_cap: int | None
    skip_recently_emailed_days: int
    review_mode: bool
    attach_resume: bool
    paused_reason: str | None
    scheduled_at: datetime | None
    created_at: datetime
    counts: EmailCounts
    last_error: EmailError | None = Field(
        default=None,
        description="The most recent error of any of its emails (a cancelled one is no error)",
    )
    steps: list[StepOut]
    reply_detection: Literal["available", "unavailable"] = Field(
        description="Whether replies and bounces can be seen (full-mode Gmail only)"
    )
    followups_without_reply_detection: bool
    stop_on_auto_reply: bool


class PreviewEmail(BaseModel):
    to: str
    headers: dict[str, str] = Field(description="The headers exactly as they will be sent")
    subject: str
    text: str
    html: str | None
    due_at: datetime


class SkippedRecipient(BaseModel):
    email: str
    reason: str = Field(
        description="duplicate, suppressed, undeliverable, recently_emailed, "
        "missing_variable, or invalid_header (the rendered subject, the name or the "
        "address cannot be written in a message header)"
    )
    detail: str | None = None
    row: int | None = Field(default=None, description="The row in the list file (header = 1)")
    field: str | None = Field(default=None, description="invalid_header: subject, name or email")


class ProjectedSchedule(BaseModel):
    first_send_at: datetime | None
    last_send_at: datetime | None
    emails_per_day: dict[str, int]
    timezone: str


class PreviewOut(BaseModel):
    to_send: int
    skipped: dict[str, int] = Field(description="Recipients left out, by reason")
    skipped_examples: list[SkippedRecipient]
    deferred_by_company_cap: list[str] = Field(
        description="Addresses moved later by the company cap"
    )
    credit_cost: int
    credit_balance: int
    schedule: ProjectedSchedule
    emails: list[PreviewEmail]


class ScheduleOut(BaseModel):
    campaign: CampaignOut
    scheduled: int
    charged_credits: int
    skipped: dict[str, int]


class ScheduledEmailOut(BaseModel):
    id: uuid.UUID
    to_address: str
    status: EmailStatus
    due_at: datetime
    subject: str
    attempts: int
    sent_at: datetime | None
    last_error: str | None
    next_attempt_at: datetime | None = Field(
        description="Not tried again before this (a retry planned after a failure)"
    )
    refunded: bool = Field(description="Its credit was given back (failed, cancelled, skipped)")
    provider_message_id: str | None
    thread_id: str | None = Field(description="Gmail's thread of the message (Gmail only)")


class ApproveRequest(BaseModel):
    email_ids: list[uuid.UUID] | None = Field(
        default=None, max_length=10_000, description="Default: every waiting email"
    )


class ApproveOut(BaseModel):
    approved: int


class StepStats(BaseModel):
    step: int = Field(description="0: the first email; 1-3: follow-ups")
    scheduled: int
    sent: int
    cancelled: int = Field(description="Stopped by a reply, bounce or unsubscribe (refunded)")
    replied: int = Field(description="Recipients who replied to this step")
    auto_replied: int
    bounced: int
    unsubscribed: int
    reply_rate: float = Field(description="replied / sent (0 when nothing was sent)")


class StatsOut(BaseModel):
    counts: EmailCounts
    last_error: EmailError | None = None
    unsubscribed: int
    sent_per_day: dict[str, int]
    replied: int = Field(description="Recipients who replied (any step)")
    auto_replied: int
    bounced: int
    reply_rate: float = Field(description="Recipients who replied / recipients emailed")
    steps: list[StepStats]


class MarkRepliedIn(BaseModel):
    email: str = Field(min_length=3, max_length=320, description="The recipient's address")


class MarkRepliedOut(BaseModel):
    email: str
    recorded: bool = Field(description="False when it was already marked")
    cancelled_followups: int = Field(description="Follow-ups cancelled and refunded")


class TimelineEntry(BaseModel):
    at: datetime
    step: int
    what: str = Field(description="An email status (sent, cancelled, …) or an event kind")
    source: str | None = None
    detail: str | None = None


class TimelineOut(BaseModel):
    email: str
    entries: list[TimelineEntry]


class TestSendOut(BaseModel):
    to: str
    provider: str
    message_id: str
    subject: str
