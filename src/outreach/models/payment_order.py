from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Enum, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from outreach.kit.clock import utcnow
from outreach.models.base import RecordModel


class PaymentOrderStatus(enum.StrEnum):
    created = "created"  # Razorpay order made, no payment seen yet
    attempted = "attempted"  # a payment was started but not captured
    paid = "paid"  # captured and credited
    failed = "failed"  # the last attempt failed (a retry may still be captured)
    expired = "expired"  # nothing captured within the reconciliation window
    refunded = "refunded"  # fully refunded (partial refunds keep ``paid``)


class PaymentOrder(RecordModel):
    """One credit pack purchase: our row for one Razorpay order.

    The row's id is the Razorpay order's ``receipt``. Credits move only once
    the Razorpay payment is verified (webhook, checkout callback or
    reconciliation) and only once per payment, by ledger keys derived from
    ``razorpay_payment_id``.
    """

    __tablename__ = "payment_orders"
    __table_args__ = (Index("ix_payment_orders_status_created_at", "status", "created_at"),)

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    pack_id: Mapped[str] = mapped_column(String(50))
    credits: Mapped[int]
    amount_paise: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[PaymentOrderStatus] = mapped_column(
        Enum(PaymentOrderStatus, native_enum=False, length=20), default=PaymentOrderStatus.created
    )
    razorpay_order_id: Mapped[str] = mapped_column(String(64), unique=True)
    razorpay_payment_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    bonus_credits: Mapped[int] = mapped_column(default=0)
    paid_at: Mapped[datetime | None]
    paid_via: Mapped[str | None] = mapped_column(String(20))
    failure_reason: Mapped[str | None] = mapped_column(String(500))
    refunded_paise: Mapped[int] = mapped_column(default=0)
    refund_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    clawed_back_credits: Mapped[int] = mapped_column(default=0)
    debt_credits: Mapped[int] = mapped_column(default=0)
    checked_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    def refund_target_credits(self) -> int:
        """Credits a refund of ``refunded_paise`` takes back: a proportional share
        of everything this order gave (pack and bonus), rounded down."""
        given = self.credits + self.bonus_credits
        return min(given, given * self.refunded_paise // max(self.amount_paise, 1))

    def summary(self) -> dict[str, Any]:
        return {
            "order_id": str(self.id),
            "razorpay_order_id": self.razorpay_order_id,
            "amount_paise": self.amount_paise,
            "currency": self.currency,
        }
