from __future__ import annotations

import enum
import uuid

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from outreach.models.base import RecordModel


class SuppressionScope(enum.StrEnum):
    user = "user"
    global_ = "global"


class SuppressionReason(enum.StrEnum):
    unsubscribed = "unsubscribed"
    bounced = "bounced"
    invalid = "invalid"
    disposable = "disposable"
    manual = "manual"
    complaint = "complaint"


GLOBAL_OWNER = "global"


class Suppression(RecordModel):
    """An address or a whole domain that must not be mailed, by one user or by anyone.

    ``owner_key`` is the user's id or ``"global"``, so "is this suppressed for
    this user" is one lookup on the unique (owner_key, value) index.
    """

    __tablename__ = "suppressions"
    __table_args__ = (UniqueConstraint("owner_key", "value"),)

    owner_key: Mapped[str] = mapped_column(String(40))
    scope: Mapped[str] = mapped_column(String(10))
    user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(10))  # email | domain
    value: Mapped[str] = mapped_column(String(320))
    reason: Mapped[str] = mapped_column(String(20))
    source: Mapped[str | None] = mapped_column(String(100))
