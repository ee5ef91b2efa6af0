from __future__ import annotations

import enum
import uuid

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from outreach.models.base import RecordModel


class LedgerReason(enum.StrEnum):
    signup_grant = "signup_grant"
    admin_grant = "admin_grant"
    admin_deduct = "admin_deduct"
    purchase = "purchase"
    purchase_bonus = "purchase_bonus"
    purchase_refund = "purchase_refund"
    referral_reward = "referral_reward"
    verify = "verify"
    enrich = "enrich"
    ai_template = "ai_template"
    resume_analysis = "resume_analysis"
    campaign_schedule = "campaign_schedule"
    campaign_refund = "campaign_refund"
    campaign_retry = "campaign_retry"  # an operator retried a failed (refunded) send
    account_deleted = "account_deleted"  # credits left when the account was deleted


class LedgerEntry(RecordModel):
    """One change of a credit balance. Its idempotency key makes it happen once."""

    __tablename__ = "ledger_entries"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    delta: Mapped[int]
    reason: Mapped[str] = mapped_column(String(50), index=True)
    ref: Mapped[str | None] = mapped_column(String(200))
    idempotency_key: Mapped[str] = mapped_column(String(300), unique=True)
    balance_after: Mapped[int]
