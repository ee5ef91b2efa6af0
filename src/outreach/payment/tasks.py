"""Payment jobs: reconciling orders the webhook never confirmed, retrying webhook events."""

from __future__ import annotations

import uuid

from outreach.config import get_settings
from outreach.kit.db import get_database
from outreach.kit.errors import AppError
from outreach.kit.jobs import job
from outreach.kit.logging import get_logger
from outreach.payment.gateway import razorpay_clients
from outreach.payment.service import Outcome, payment_service
from outreach.payment.webhooks import PROCESS_JOB, webhook_service

log = get_logger("outreach.payment.tasks")


@job("payment.reconcile_orders", every_seconds=300)
async def reconcile_orders(limit: int = 100) -> int:
    """Every 5 minutes: ask Razorpay about orders still unpaid after the reconciliation
    delay (15 minutes) and credit captured payments the webhook never delivered.
    Returns how many orders were credited."""
    settings = get_settings()
    if not settings.payments_enabled:
        return 0
    client = razorpay_clients.get(settings)
    database = get_database()
    async with database.session() as session:
        due = await payment_service.orders_due_for_reconciliation(session, limit=limit)
    credited = 0
    for order_id, razorpay_order_id in due:
        try:
            # Outside any transaction: no lock is held while Razorpay answers.
            payments = await client.order_payments(razorpay_order_id)
        except AppError as exc:
            log.warning("reconciliation lookup failed", order_id=str(order_id), error=str(exc))
            continue
        async with database.session() as session:
            result = await payment_service.reconcile_order(
                session, order_id=order_id, payments=payments
            )
        credited += result.outcome == Outcome.credited
    log.info("payment orders reconciled", checked=len(due), credited=credited)
    return credited


@job(PROCESS_JOB, max_attempts=5)
async def process_webhook_event(webhook_event_id: str) -> bool:
    """Retry a stored webhook event whose processing failed."""
    async with get_database().session() as session:
        return await webhook_service.process_stored(
            session, webhook_event_id=uuid.UUID(webhook_event_id)
        )
