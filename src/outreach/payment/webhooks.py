"""Razorpay webhooks: verify the signature over the raw body, store, then process.

An event is stored (unique on ``X-Razorpay-Event-Id``) before anything else
happens, so a redelivery answers 200 and does nothing. A correctly signed
event that does not match our order is answered 200 too (Razorpay would
otherwise retry it for a day and then disable the webhook), stored as a
mismatch and audited; no credits move. If processing fails unexpectedly the
event stays ``received`` with the error and a job retries it.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.config import get_settings
from outreach.kit.clock import utcnow
from outreach.kit.errors import BadRequest, Unauthorized
from outreach.kit.jobs import enqueue_after_commit
from outreach.kit.logging import get_logger
from outreach.models import WebhookEvent, WebhookEventStatus
from outreach.payment import repository
from outreach.payment.gateway import (
    PaymentsDisabled,
    RazorpayOrder,
    RazorpayPayment,
    RazorpayRefund,
)
from outreach.payment.service import CapturedPayment, Outcome, PaymentResult, payment_service
from outreach.payment.signatures import verify_webhook_signature

log = get_logger("outreach.payment.webhooks")

PROVIDER = "razorpay"
PROCESS_JOB = "payment.process_webhook_event"
M = TypeVar("M", bound=BaseModel)


class WebhookSignatureMissing(BadRequest):
    code, title = "webhook_signature_missing", "X-Razorpay-Signature header missing"


class WebhookSignatureInvalid(Unauthorized):
    code, title = "webhook_signature_invalid", "The webhook signature does not verify"


class WebhookPayloadInvalid(BadRequest):
    code, title = "webhook_payload_invalid", "The webhook body is not a Razorpay event"


@dataclass(frozen=True)
class WebhookReceipt:
    event_id: str
    duplicate: bool
    status: str


class _Malformed(Exception):
    """A signed event whose payload is not shaped as documented."""


Handler = Callable[[AsyncSession, dict[str, Any]], Awaitable[PaymentResult]]


def _entity(payload: dict[str, Any], name: str, model: type[M]) -> M:
    try:
        return model.model_validate(payload["payload"][name]["entity"])
    except (KeyError, TypeError, ValidationError) as exc:
        raise _Malformed(f"payload.{name}.entity is missing or malformed") from exc


async def _payment_captured(session: AsyncSession, payload: dict[str, Any]) -> PaymentResult:
    payment = _entity(payload, "payment", RazorpayPayment)
    return await payment_service.apply_captured_payment(
        session, payment=CapturedPayment.from_entity(payment), source="webhook"
    )


async def _order_paid(session: AsyncSession, payload: dict[str, Any]) -> PaymentResult:
    payment = _entity(payload, "payment", RazorpayPayment)
    order = _entity(payload, "order", RazorpayOrder)
    if order.id != payment.order_id or order.amount_paid != payment.amount:
        raise _Malformed("payload.order does not match payload.payment")
    # Our own notes on the order (and its receipt, our order id) win over the payment's.
    notes = {**payment.notes, **order.notes}
    if order.receipt:
        notes["outreach_order_id"] = order.receipt
    captured = CapturedPayment.from_entity(payment)
    return await payment_service.apply_captured_payment(
        session,
        payment=CapturedPayment(
            payment_id=captured.payment_id,
            razorpay_order_id=captured.razorpay_order_id,
            amount_paise=captured.amount_paise,
            currency=captured.currency,
            notes=notes,
        ),
        source="webhook",
    )


async def _payment_failed(session: AsyncSession, payload: dict[str, Any]) -> PaymentResult:
    payment = _entity(payload, "payment", RazorpayPayment)
    return await payment_service.record_failed_payment(session, payment=payment, source="webhook")


async def _refund_processed(session: AsyncSession, payload: dict[str, Any]) -> PaymentResult:
    refund = _entity(payload, "refund", RazorpayRefund)
    payment = _entity(payload, "payment", RazorpayPayment)
    if refund.payment_id != payment.id:
        raise _Malformed("payload.refund is not for payload.payment")
    return await payment_service.apply_refund(
        session,
        refund_id=refund.id,
        payment=payment,
        amount_paise=refund.amount,
        currency=refund.currency,
        source="webhook",
    )


HANDLERS: dict[str, Handler] = {
    "payment.captured": _payment_captured,
    "order.paid": _order_paid,
    "payment.failed": _payment_failed,
    "refund.processed": _refund_processed,
}

_STATUS = {
    Outcome.credited: WebhookEventStatus.processed,
    Outcome.recorded: WebhookEventStatus.processed,
    Outcome.already_credited: WebhookEventStatus.ignored,
    Outcome.ignored: WebhookEventStatus.ignored,
    Outcome.mismatch: WebhookEventStatus.mismatch,
}


class WebhookService:
    async def receive_razorpay(
        self,
        session: AsyncSession,
        *,
        body: bytes,
        signature: str | None,
        event_id: str | None,
    ) -> WebhookReceipt:
        """Verify, store (once per event id), then process a Razorpay webhook."""
        secrets = [s.get_secret_value() for s in get_settings().razorpay_webhook_secrets]
        if not secrets:
            raise PaymentsDisabled("set OUTREACH_RAZORPAY_WEBHOOK_SECRETS to receive webhooks")
        if not signature:
            raise WebhookSignatureMissing("send the X-Razorpay-Signature header")
        if not verify_webhook_signature(body, signature, secrets):
            raise WebhookSignatureInvalid("X-Razorpay-Signature does not sign this body")
        try:
            text = body.decode("utf-8")
            payload = json.loads(text)
            event_type = payload["event"]
            if not isinstance(event_type, str) or not 0 < len(event_type) <= 100:
                raise TypeError("event")
        except (UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
            raise WebhookPayloadInvalid("the body is not a JSON Razorpay event") from exc
        # Razorpay always sends the id; without one, identical bodies are one event.
        event_id = (event_id or "").strip()[:100] or f"sha256:{hashlib.sha256(body).hexdigest()}"
        stored = await repository.insert_webhook_event(
            session, provider=PROVIDER, event_id=event_id, event_type=event_type, raw_body=text
        )
        if stored is None:
            log.info("duplicate webhook ignored", event_id=event_id, event_type=event_type)
            return WebhookReceipt(event_id=event_id, duplicate=True, status="duplicate")
        event = await session.get(WebhookEvent, stored)
        assert event is not None
        await self.process_event(session, event=event, retry_on_error=True)
        return WebhookReceipt(event_id=event_id, duplicate=False, status=event.status.value)

    async def process_event(
        self, session: AsyncSession, *, event: WebhookEvent, retry_on_error: bool = False
    ) -> None:
        """Act on a stored event; sets its status. Inside a savepoint, so a failure
        leaves the event stored (``received``, with the error) and nothing half-done."""
        event.attempts += 1
        try:
            async with session.begin_nested():
                result = await self._dispatch(session, event)
        except Exception as exc:
            if not retry_on_error:
                raise
            log.exception("webhook processing failed; a job retries it", event_id=event.event_id)
            event.detail = f"{type(exc).__name__}: {exc}"[:500]
            await session.flush()
            enqueue_after_commit(session, PROCESS_JOB, webhook_event_id=str(event.id))
            return
        event.status = _STATUS[result.outcome]
        event.detail = result.detail[:500] if result.detail else None
        event.payment_order_id = result.order.id if result.order is not None else None
        event.processed_at = utcnow()
        await session.flush()

    async def _dispatch(self, session: AsyncSession, event: WebhookEvent) -> PaymentResult:
        handler = HANDLERS.get(event.event_type)
        if handler is None:
            return PaymentResult(Outcome.ignored, None, f"{event.event_type} is not acted on")
        payload = json.loads(event.raw_body)
        try:
            return await handler(session, payload)
        except _Malformed as exc:
            # Signed by Razorpay yet not what its documentation describes: keep it, move nothing.
            return await payment_service.record_malformed(
                session, source="webhook", reason=str(exc), event_id=event.event_id
            )

    async def process_stored(self, session: AsyncSession, *, webhook_event_id: uuid.UUID) -> bool:
        """Process a stored event that has not been processed yet (the retry job)."""
        event = await repository.lock_webhook_event(session, webhook_event_id)
        if event is None or event.status != WebhookEventStatus.received:
            return False
        await self.process_event(session, event=event)
        return True


webhook_service = WebhookService()
