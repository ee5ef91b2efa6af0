from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from outreach.campaign.schemas import CampaignOut
from outreach.credits.schemas import LedgerEntryOut
from outreach.models import UserRole


class AdminUserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    name: str | None
    role: UserRole
    referral_code: str | None
    created_at: datetime
    last_login_at: datetime | None
    credit_balance: int


class RoleChange(BaseModel):
    role: UserRole


class CreditGrant(BaseModel):
    delta: StrictInt = Field(description="Credits to add (positive) or deduct (negative)")
    reason: str = Field(min_length=3, max_length=200, description="Why, kept in the audit log")


class CreditGrantOut(BaseModel):
    entry: LedgerEntryOut
    balance: int


class AuditLogOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    created_at: datetime
    actor_id: uuid.UUID | None
    action: str
    target_type: str | None
    target_id: str | None
    details: dict[str, Any]
    ip: str | None
    request_id: str | None


class FailedJobOut(BaseModel):
    """A background job (or a campaign send) that failed its last attempt."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    created_at: datetime
    task_name: str
    task_id: str
    args: dict[str, Any] = Field(description='{"args": [...], "kwargs": {...}} as it was sent')
    error: str
    traceback: str
    attempts: int
    retried_at: datetime | None = Field(description="Set once an operator retried it")


class FailedJobRetryOut(BaseModel):
    failed_job: FailedJobOut
    action: Literal["job_enqueued", "send_rescheduled"] = Field(
        description="job_enqueued: the job was sent again with its stored arguments; "
        "send_rescheduled: the failed email was planned again and its credit charged"
    )
    charged_credits: int = Field(description="Credits charged for a retried send (else 0)")


class AdminStats(BaseModel):
    generated_at: datetime
    users: int = Field(description="Accounts, not counting deleted ones")
    deleted_users: int
    active_mailboxes: int
    emails_sent_today: int = Field(description="Since midnight UTC")
    emails_sent_last_30_days: int
    failed_sends_last_30_days: int
    failed_jobs_open: int = Field(description="Failed jobs not retried yet")
    payments_captured: int
    revenue_paise: int = Field(description="Captured payments, before refunds")
    revenue_last_30_days_paise: int
    refunded_paise: int
    net_revenue_paise: int
    credits_outstanding: int = Field(description="Sum of every credit balance")


class AdminCampaignOut(CampaignOut):
    user_id: uuid.UUID
    user_email: str
