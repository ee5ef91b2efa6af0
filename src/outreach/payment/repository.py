"""All SQL of the payment domain. Per-user scoping lives in ``readable_orders``."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TypeVar

from sqlalchemy import Select, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.kit.clock import utcnow
from outreach.kit.db import dialect_insert
from outreach.models import PaymentOrder, PaymentOrderStatus, User, WebhookEvent

T = TypeVar("T")

# Orders the reconciliation job asks Razorpay about.
OPEN_STATUSES = (
    PaymentOrderStatus.created,
    PaymentOrderStatus.attempted,
    PaymentOrderStatus.failed,
)


def readable_orders(user_id: uuid.UUID) -> Select[PaymentOrder]:
    """The orders a user may see: their own."""
    return select(PaymentOrder).where(PaymentOrder.user_id == user_id)


def _locked(statement: Select[T]) -> Select[T]:
    # FOR NO KEY UPDATE on PostgreSQL (SQLite already serialises writers): it still
    # serialises payments, but not other transactions' foreign-key checks (a ledger
    # insert for this user takes KEY SHARE on the row), which would deadlock. Fresh
    # values, not the identity map's: the row may have changed while we waited.
    return statement.with_for_update(key_share=True).execution_options(populate_existing=True)


async def lock_order(session: AsyncSession, order_id: uuid.UUID) -> PaymentOrder | None:
    return await session.scalar(_locked(select(PaymentOrder).where(PaymentOrder.id == order_id)))


async def lock_order_by_razorpay_id(
    session: AsyncSession, razorpay_order_id: str
) -> PaymentOrder | None:
    return await session.scalar(
        _locked(select(PaymentOrder).where(PaymentOrder.razorpay_order_id == razorpay_order_id))
    )


async def lock_order_by_payment_id(session: AsyncSession, payment_id: str) -> PaymentOrder | None:
    return await session.scalar(
        _locked(select(PaymentOrder).where(PaymentOrder.razorpay_payment_id == payment_id))
    )


async def lock_user(session: AsyncSession, user_id: uuid.UUID) -> User:
    user = await session.scalar(_locked(select(User).where(User.id == user_id)))
    assert user is not None  # payment_orders.user_id is a foreign key
    return user


async def orders_due_for_reconciliation(
    session: AsyncSession,
    *,
    created_before: datetime,
    checked_before: datetime,
    failed_after: datetime,
    limit: int,
) -> list[tuple[uuid.UUID, str]]:
    rows = await session.execute(
        select(PaymentOrder.id, PaymentOrder.razorpay_order_id)
        .where(
            or_(
                PaymentOrder.status.in_([PaymentOrderStatus.created, PaymentOrderStatus.attempted]),
                and_(
                    PaymentOrder.status == PaymentOrderStatus.failed,
                    PaymentOrder.created_at > failed_after,
                ),
            ),
            PaymentOrder.created_at <= created_before,
            or_(PaymentOrder.checked_at.is_(None), PaymentOrder.checked_at <= checked_before),
        )
        .order_by(PaymentOrder.created_at)
        .limit(limit)
    )
    return [(row[0], row[1]) for row in rows]


async def insert_webhook_event(
    session: AsyncSession, *, provider: str, event_id: str, event_type: str, raw_body: str
) -> uuid.UUID | None:
    """Store the event; None when it was stored before (a redelivery).

    On PostgreSQL a concurrent insert of the same event waits for the first
    transaction and then finds the conflict, so exactly one request processes it.
    """
    inserted: uuid.UUID | None = await session.scalar(
        dialect_insert(session)(WebhookEvent)
        .values(
            id=uuid.uuid4(),
            created_at=utcnow(),
            provider=provider,
            event_id=event_id,
            event_type=event_type,
            raw_body=raw_body,
            status="received",
            attempts=0,
        )
        .on_conflict_do_nothing(index_elements=["provider", "event_id"])
        .returning(WebhookEvent.id)
    )
    return inserted


async def lock_webhook_event(session: AsyncSession, event_id: uuid.UUID) -> WebhookEvent | None:
    return await session.scalar(_locked(select(WebhookEvent).where(WebhookEvent.id == event_id)))
