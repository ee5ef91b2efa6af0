"""Buying credit packs: Razorpay orders, and applying verified payments exactly once.

Credits move only for a verified payment (the checkout callback's signature,
a signed webhook, or Razorpay's own answer to the reconciliation job), and
only once per Razorpay payment: the order row is locked while a payment is
applied, and the ledger keys are derived from the payment id
(``razorpay:<payment id>:purchase`` and ``…:purchase_bonus``), so the webhook,
its redeliveries and the callback together credit once. The first-purchase
bonus is decided under a lock on the user's row, so it is given once per user.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from outreach.config import Settings, get_settings
from outreach.credits.pricing import CreditPack, pricing_from_settings
from outreach.credits.service import InsufficientCredits, credit_service
from outreach.kit import metrics
from outreach.kit.audit import record_audit
from outreach.kit.clock import utcnow
from outreach.kit.errors import BadRequest, Conflict, FieldError, NotFound, Unprocessable
from outreach.kit.logging import get_logger
from outreach.kit.pagination import Pagination, paginate
from outreach.models import LedgerReason, PaymentOrder, PaymentOrderStatus, User
from outreach.payment import repository
from outreach.payment.gateway import PaymentsDisabled, RazorpayPayment, razorpay_clients
from outreach.payment.signatures import verify_payment_signature
from outreach.referral.service import ReferralTrigger, referral_service

log = get_logger("outreach.payment")


class UnknownPack(Unprocessable):
    code, title = "unknown_pack", "No such credit pack"


class PaymentOrderNotFound(NotFound):
    code, title = "payment_order_not_found", "No such payment order"


class PaymentSignatureInvalid(BadRequest):
    code, title = "payment_signature_invalid", "The payment signature does not verify"


class PaymentNotApplicable(Conflict):
    code, title = "payment_not_applicable", "This payment cannot be applied to the order"


class Outcome(enum.StrEnum):
    credited = "credited"  # credits moved now
    already_credited = "already_credited"  # this payment was applied before: nothing moved
    recorded = "recorded"  # a state change without credits (failed attempt, refund)
    ignored = "ignored"  # nothing to do
    mismatch = "mismatch"  # verified, but not consistent with our order: nothing moved


@dataclass(frozen=True)
class PaymentResult:
    outcome: Outcome
    order: PaymentOrder | None = None
    detail: str | None = None


@dataclass(frozen=True)
class CapturedPayment:
    """A payment a verified source says was captured.

    ``amount_paise``/``currency`` are None for the checkout callback, whose
    signature binds the payment to our order (and so to the order's amount).
    """

    payment_id: str
    razorpay_order_id: str
    amount_paise: int | None = None
    currency: str | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_entity(cls, payment: RazorpayPayment) -> CapturedPayment:
        return cls(
            payment_id=payment.id,
            razorpay_order_id=payment.order_id or "",
            amount_paise=payment.amount,
            currency=payment.currency,
            notes=payment.notes,
        )


@dataclass(frozen=True)
class Checkout:
    """What Razorpay Checkout needs to take the payment for ``order``."""

    order: PaymentOrder
    key_id: str
    name: str
    description: str
    prefill: dict[str, str]
    notes: dict[str, str]


def _key_secret(settings: Settings) -> str:
    if not settings.payments_enabled or settings.razorpay_key_secret is None:
        raise PaymentsDisabled("set OUTREACH_RAZORPAY_KEY_ID and OUTREACH_RAZORPAY_KEY_SECRET")
    return settings.razorpay_key_secret.get_secret_value()


def _set_status(session: AsyncSession, order: PaymentOrder, status: PaymentOrderStatus) -> None:
    """Move the order to ``status``, counted (payments by status) once committed."""
    if order.status != status:
        order.status = status
        metrics.count_after_commit(session, metrics.PAYMENTS.labels(status.value))


class PaymentService:
    def packs(self) -> tuple[CreditPack, ...]:
        return pricing_from_settings(get_settings()).packs

    def bonus_percent(self) -> int:
        return pricing_from_settings(get_settings()).first_purchase_bonus_percent

    def bonus_for(self, credits: int) -> int:
        """The first-purchase bonus on a pack of ``credits`` (rounded down)."""
        return credits * self.bonus_percent() // 100

    async def create_order(self, session: AsyncSession, *, user: User, pack_id: str) -> Checkout:
        """Create a Razorpay order for the pack and our ``payment_orders`` row (``created``)."""
        settings = get_settings()
        pack = pricing_from_settings(settings).pack(pack_id)
        if pack is None:
            raise UnknownPack(
                f"no credit pack {pack_id!r}",
                errors=[FieldError(loc=["body", "pack_id"], message="unknown pack")],
            )
        order_id = uuid.uuid4()
        notes = {"outreach_order_id": str(order_id), "outreach_user_id": str(user.id)}
        remote = await razorpay_clients.get(settings).create_order(
            amount=pack.amount_paise,
            currency=pack.currency,
            receipt=str(order_id),
            notes={**notes, "pack_id": pack.id},
        )
        order = PaymentOrder(
            id=order_id,
            created_at=utcnow(),
            user_id=user.id,
            pack_id=pack.id,
            credits=pack.credits,
            amount_paise=pack.amount_paise,
            currency=pack.currency,
            status=PaymentOrderStatus.created,
            razorpay_order_id=remote.id,
            refund_ids=[],
        )
        session.add(order)
        await session.flush()
        metrics.count_after_commit(
            session, metrics.PAYMENTS.labels(PaymentOrderStatus.created.value)
        )
        await record_audit(
            session,
            action="payment.order_created",
            actor_id=user.id,
            target_type="payment_order",
            target_id=order.id,
            details={"pack_id": pack.id, "razorpay_order_id": remote.id},
        )
        assert settings.razorpay_key_id is not None
        return Checkout(
            order=order,
            key_id=settings.razorpay_key_id,
            name=settings.razorpay_checkout_name,
            description=f"{pack.credits} credits",
            prefill={"email": user.email, **({"name": user.name} if user.name else {})},
            notes=notes,
        )

    async def list_orders(
        self, session: AsyncSession, *, user: User, pagination: Pagination
    ) -> tuple[list[PaymentOrder], str | None]:
        return await paginate(
            session,
            repository.readable_orders(user.id),
            pagination,
            created_at=PaymentOrder.created_at,
            id_column=PaymentOrder.id,
        )

    async def verify_checkout(
        self,
        session: AsyncSession,
        *,
        user: User,
        razorpay_order_id: str,
        razorpay_payment_id: str,
        razorpay_signature: str,
    ) -> PaymentOrder:
        """The checkout callback: check its signature, then apply the payment once."""
        secret = _key_secret(get_settings())
        if not verify_payment_signature(
            secret,
            order_id=razorpay_order_id,
            payment_id=razorpay_payment_id,
            signature=razorpay_signature,
        ):
            raise PaymentSignatureInvalid(
                "razorpay_signature does not sign this order and payment",
                errors=[FieldError(loc=["body", "razorpay_signature"], message="invalid")],
            )
        order = await session.scalar(
            repository.readable_orders(user.id).where(
                PaymentOrder.razorpay_order_id == razorpay_order_id
            )
        )
        if order is None:
            raise PaymentOrderNotFound(f"you have no order {razorpay_order_id!r}")
        result = await self.apply_captured_payment(
            session,
            payment=CapturedPayment(
                payment_id=razorpay_payment_id, razorpay_order_id=razorpay_order_id
            ),
            source="checkout",
        )
        if result.outcome == Outcome.mismatch:
            raise PaymentNotApplicable(result.detail)
        assert result.order is not None
        return result.order

    async def apply_captured_payment(
        self, session: AsyncSession, *, payment: CapturedPayment, source: str
    ) -> PaymentResult:
        """Credit the pack (and the first-purchase bonus) for a captured payment, once.

        A payment that does not match its order (unknown order, other amount,
        currency or user, or a second payment of a paid order) is audited as a
        mismatch and moves nothing.
        """
        order = await repository.lock_order_by_razorpay_id(session, payment.razorpay_order_id)
        if order is None:
            return await self._mismatch(
                session, None, source, "the payment is for an order we never created", payment
            )
        if reason := self._payment_mismatch(order, payment):
            return await self._mismatch(session, order, source, reason, payment)
        if order.razorpay_payment_id == payment.payment_id:
            return PaymentResult(Outcome.already_credited, order)
        if order.razorpay_payment_id is not None:
            reason = f"the order was already paid by {order.razorpay_payment_id}"
            return await self._mismatch(session, order, source, reason, payment)
        await self._credit(session, order, payment.payment_id, source)
        return PaymentResult(Outcome.credited, order)

    @staticmethod
    def _payment_mismatch(order: PaymentOrder, payment: CapturedPayment) -> str | None:
        if payment.amount_paise is not None and payment.amount_paise != order.amount_paise:
            return f"amount {payment.amount_paise} does not match the order's {order.amount_paise}"
        if payment.currency is not None and payment.currency != order.currency:
            return f"currency {payment.currency} does not match the order's {order.currency}"
        named_user = payment.notes.get("outreach_user_id")
        if named_user is not None and named_user != str(order.user_id):
            return "the payment names another user"
        named_order = payment.notes.get("outreach_order_id")
        if named_order is not None and named_order != str(order.id):
            return "the payment names another order"
        return None

    async def _credit(
        self, session: AsyncSession, order: PaymentOrder, payment_id: str, source: str
    ) -> None:
        user = await repository.lock_user(session, order.user_id)
        first_purchase = user.first_paid_at is None
        await credit_service.apply_ledger_entry(
            session,
            user_id=order.user_id,
            delta=order.credits,
            reason=LedgerReason.purchase,
            ref=str(order.id),
            idempotency_key=f"razorpay:{payment_id}:purchase",
        )
        bonus = self.bonus_for(order.credits) if first_purchase else 0
        if bonus > 0:
            await credit_service.apply_ledger_entry(
                session,
                user_id=order.user_id,
                delta=bonus,
                reason=LedgerReason.purchase_bonus,
                ref=str(order.id),
                idempotency_key=f"razorpay:{payment_id}:purchase_bonus",
            )
        now = utcnow()
        if first_purchase:
            user.first_paid_at = now
        _set_status(session, order, PaymentOrderStatus.paid)
        order.razorpay_payment_id = payment_id
        order.bonus_credits = bonus
        order.paid_at = now
        order.paid_via = source
        order.failure_reason = None
        await session.flush()
        if first_purchase:
            await referral_service.grant_referral_reward_if_eligible(
                session, referred_user_id=user.id, trigger=ReferralTrigger.first_payment
            )
        await record_audit(
            session,
            action="payment.paid",
            actor_id=None,
            target_type="payment_order",
            target_id=order.id,
            details={
                "source": source,
                "payment_id": payment_id,
                "credits": order.credits,
                "bonus": bonus,
            },
        )
        log.info("payment credited", order_id=str(order.id), source=source, bonus=bonus)

    async def _mismatch(
        self,
        session: AsyncSession,
        order: PaymentOrder | None,
        source: str,
        reason: str,
        payment: CapturedPayment | None = None,
        **details: Any,
    ) -> PaymentResult:
        if payment is not None:
            details |= {
                "payment_id": payment.payment_id,
                "razorpay_order_id": payment.razorpay_order_id,
            }
        await record_audit(
            session,
            action="payment.mismatch",
            actor_id=None,
            target_type="payment_order" if order else None,
            target_id=order.id if order else None,
            details={"source": source, "reason": reason, **details},
        )
        log.warning("payment mismatch", source=source, reason=reason)
        metrics.count_after_commit(session, metrics.PAYMENT_MISMATCHES.labels(source))
        return PaymentResult(Outcome.mismatch, order, reason)

    async def record_malformed(
        self, session: AsyncSession, *, source: str, reason: str, event_id: str
    ) -> PaymentResult:
        """A verified message we cannot read: audited as a mismatch, nothing moves."""
        return await self._mismatch(session, None, source, reason, event_id=event_id)

    async def record_failed_payment(
        self, session: AsyncSession, *, payment: RazorpayPayment, source: str
    ) -> PaymentResult:
        """A payment attempt failed: an unpaid order is marked ``failed`` (a later
        attempt on the same order may still be captured)."""
        order = await repository.lock_order_by_razorpay_id(session, payment.order_id or "")
        if order is None:
            return await self._mismatch(
                session, None, source, "the failed payment is for an order we never created"
            )
        if order.status in (PaymentOrderStatus.paid, PaymentOrderStatus.refunded):
            return PaymentResult(Outcome.ignored, order, "the order is already paid")
        _set_status(session, order, PaymentOrderStatus.failed)
        order.failure_reason = (payment.error_description or payment.error_code or "failed")[:500]
        await session.flush()
        return PaymentResult(Outcome.recorded, order)

    async def apply_refund(
        self,
        session: AsyncSession,
        *,
        refund_id: str,
        payment: RazorpayPayment,
        amount_paise: int,
        currency: str,
        source: str,
    ) -> PaymentResult:
        """Take back a refunded payment's share of credits, as far as the balance allows.

        A refund that arrives before the capture applies the capture first (the
        refund proves it). Whatever the balance cannot cover is recorded as
        ``debt_credits`` on the order; the case is audited.
        """
        order = await repository.lock_order_by_payment_id(session, payment.id)
        if order is None:
            captured = await self.apply_captured_payment(
                session, payment=CapturedPayment.from_entity(payment), source=source
            )
            if captured.outcome == Outcome.mismatch:
                return captured
            order = await repository.lock_order_by_payment_id(session, payment.id)
            assert order is not None
        if refund_id in order.refund_ids:
            return PaymentResult(Outcome.ignored, order, "refund already applied")
        if currency != order.currency or order.refunded_paise + amount_paise > order.amount_paise:
            reason = f"refund {amount_paise} {currency} does not fit the order"
            return await self._mismatch(session, order, source, reason, refund_id=refund_id)
        order.refunded_paise += amount_paise
        order.refund_ids = [*order.refund_ids, refund_id]
        owed = order.refund_target_credits() - order.clawed_back_credits - order.debt_credits
        taken = await self._claw_back(session, order, refund_id, owed)
        order.clawed_back_credits += taken
        order.debt_credits += owed - taken
        if order.refunded_paise >= order.amount_paise:
            _set_status(session, order, PaymentOrderStatus.refunded)
        await session.flush()
        await record_audit(
            session,
            action="payment.refund",
            actor_id=None,
            target_type="payment_order",
            target_id=order.id,
            details={
                "refund_id": refund_id,
                "amount_paise": amount_paise,
                "clawed_back": taken,
                "debt": owed - taken,
            },
        )
        return PaymentResult(Outcome.recorded, order)

    async def _claw_back(
        self, session: AsyncSession, order: PaymentOrder, refund_id: str, owed: int
    ) -> int:
        # The balance may be spent between reading it and debiting: read again and retry.
        for _ in range(3):
            take = min(owed, await credit_service.get_balance(session, user_id=order.user_id))
            if take <= 0:
                return 0
            try:
                await credit_service.apply_ledger_entry(
                    session,
                    user_id=order.user_id,
                    delta=-take,
                    reason=LedgerReason.purchase_refund,
                    ref=str(order.id),
                    idempotency_key=f"razorpay:{refund_id}:refund",
                )
            except InsufficientCredits:
                continue
            return take
        return 0

    async def orders_due_for_reconciliation(
        self, session: AsyncSession, *, limit: int = 100
    ) -> list[tuple[uuid.UUID, str]]:
        """Unpaid orders older than the reconciliation delay and not checked recently
        (failed ones only within the expiry window), oldest first."""
        settings = get_settings()
        now = utcnow()
        delay = timedelta(minutes=settings.payment_reconcile_after_minutes)
        return await repository.orders_due_for_reconciliation(
            session,
            created_before=now - delay,
            checked_before=now - delay,
            failed_after=now - timedelta(hours=settings.payment_order_expiry_hours),
            limit=limit,
        )

    async def reconcile_order(
        self, session: AsyncSession, *, order_id: uuid.UUID, payments: list[RazorpayPayment]
    ) -> PaymentResult:
        """Apply what Razorpay reports for an order the webhook left unpaid: a captured
        payment is credited; otherwise the order becomes ``attempted``, ``failed``, or
        after the expiry window ``expired``."""
        order = await repository.lock_order(session, order_id)
        if order is None or order.status not in repository.OPEN_STATUSES:
            return PaymentResult(Outcome.ignored, order)
        now = utcnow()
        order.checked_at = now
        await session.flush()
        for payment in payments:
            if payment.status == "captured":
                result = await self.apply_captured_payment(
                    session, payment=CapturedPayment.from_entity(payment), source="reconciliation"
                )
                if result.outcome != Outcome.mismatch:
                    return result
        status = order.status
        if any(p.status in ("created", "authorized") for p in payments):
            status = PaymentOrderStatus.attempted
        elif any(p.status == "failed" for p in payments):
            status = PaymentOrderStatus.failed
            order.failure_reason = (payments[-1].error_description or "failed")[:500]
        expiry = timedelta(hours=get_settings().payment_order_expiry_hours)
        if order.created_at <= now - expiry and status != PaymentOrderStatus.failed:
            status = PaymentOrderStatus.expired
        _set_status(session, order, status)
        await session.flush()
        return PaymentResult(Outcome.recorded, order)


payment_service = PaymentService()
