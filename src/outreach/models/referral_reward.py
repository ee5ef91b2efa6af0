from __future__ import annotations

import uuid

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from outreach.models.base import RecordModel


class ReferralReward(RecordModel):
    """Credits given to a referrer; at most one per referred user."""

    __tablename__ = "referral_rewards"

    referrer_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    referred_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), unique=True
    )
    trigger: Mapped[str] = mapped_column(String(30))
    credits: Mapped[int]
