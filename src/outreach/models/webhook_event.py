from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import Enum, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from outreach.models.base import RecordModel


class WebhookEventStatus(enum.StrEnum):
    received = "received"  # stored, not processed yet (or processing failed: see ``detail``)
    processed = "processed"  # acted on
    ignored = "ignored"  # an event type we do not act on, or nothing left to do
    mismatch = "mismatch"  # signed, but does not match our order: nothing credited


class WebhookEvent(RecordModel):
    """An accepted (correctly signed) webhook event, stored before it is processed.

    ``event_id`` is the provider's event id (``X-Razorpay-Event-Id``): a
    redelivery of the same event is a duplicate and does nothing.
    """

    __tablename__ = "webhook_events"
    __table_args__ = (UniqueConstraint("provider", "event_id"),)

    provider: Mapped[str] = mapped_column(String(20))
    event_id: Mapped[str] = mapped_column(String(100))
    event_type: Mapped[str] = mapped_column(String(100), index=True)
    # The exact body that was signed, kept so processing can be retried and audited.
    raw_body: Mapped[str] = mapped_column(Text)
    status: Mapped[WebhookEventStatus] = mapped_column(
        Enum(WebhookEventStatus, native_enum=False, length=20),
        default=WebhookEventStatus.received,
        index=True,
    )
    detail: Mapped[str | None] = mapped_column(String(500))
    payment_order_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("payment_orders.id", ondelete="SET NULL"), index=True
    )
    attempts: Mapped[int] = mapped_column(default=0)
    processed_at: Mapped[datetime | None]
