"""/v1/payments: credit packs, Razorpay orders, the checkout callback and webhooks."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from outreach.auth.dependencies import CurrentUser, IdempotencyRequired
from outreach.credits.service import credit_service
from outreach.kit.db import SessionDep
from outreach.kit.errors import problem_responses
from outreach.kit.idempotency import IdempotentRoute
from outreach.kit.openapi import declares_problems
from outreach.kit.pagination import Page, PaginationDep
from outreach.payment.gateway import PaymentsDisabled
from outreach.payment.schemas import (
    CheckoutOut,
    CheckoutPrefill,
    PackOut,
    PacksOut,
    PaymentOrderCreate,
    PaymentOrderOut,
    PaymentVerified,
    PaymentVerify,
    WebhookAck,
)
from outreach.payment.service import payment_service
from outreach.payment.webhooks import webhook_service


@declares_problems(503)  # payments_disabled
async def require_payments_enabled(request: Request) -> None:
    if not request.app.state.settings.payments_enabled:
        raise PaymentsDisabled("payments are not configured on this server (no Razorpay keys)")


router = APIRouter(
    prefix="/v1/payments",
    tags=["payments"],
    route_class=IdempotentRoute,
    dependencies=[Depends(require_payments_enabled)],
    responses=problem_responses(503),
)


@router.get("/packs", summary="Credit packs on sale", responses=problem_responses(401))
async def list_packs(user: CurrentUser) -> PacksOut:
    first = user.first_paid_at is None
    packs = [
        PackOut(
            id=pack.id,
            credits=pack.credits,
            amount_paise=pack.amount_paise,
            currency=pack.currency,
            first_purchase_bonus_credits=payment_service.bonus_for(pack.credits) if first else 0,
        )
        for pack in payment_service.packs()
    ]
    return PacksOut(
        packs=packs,
        first_purchase_bonus_percent=payment_service.bonus_percent(),
        first_purchase=first,
    )


@router.post(
    "/orders",
    summary="Start buying a pack: creates a Razorpay order (Idempotency-Key required)",
    responses=problem_responses(400, 401, 403, 409, 422, 502),
    dependencies=[IdempotencyRequired],
)
async def create_order(
    body: PaymentOrderCreate, user: CurrentUser, session: SessionDep
) -> CheckoutOut:
    checkout = await payment_service.create_order(session, user=user, pack_id=body.pack_id)
    order = checkout.order
    return CheckoutOut(
        order=PaymentOrderOut.model_validate(order),
        key_id=checkout.key_id,
        razorpay_order_id=order.razorpay_order_id,
        amount=order.amount_paise,
        currency=order.currency,
        name=checkout.name,
        description=checkout.description,
        prefill=CheckoutPrefill(**checkout.prefill),
        notes=checkout.notes,
    )


@router.get(
    "/orders",
    summary="Your orders and their status, newest first",
    responses=problem_responses(400, 401),
)
async def list_orders(
    user: CurrentUser, session: SessionDep, pagination: PaginationDep
) -> Page[PaymentOrderOut]:
    orders, next_cursor = await payment_service.list_orders(
        session, user=user, pagination=pagination
    )
    return Page(items=[PaymentOrderOut.model_validate(o) for o in orders], next_cursor=next_cursor)


@router.post(
    "/verify",
    summary="Checkout callback: verify Razorpay's signature and apply the credits once",
    responses=problem_responses(400, 401, 403, 404, 409, 422),
)
async def verify_payment(
    body: PaymentVerify, user: CurrentUser, session: SessionDep
) -> PaymentVerified:
    order = await payment_service.verify_checkout(
        session,
        user=user,
        razorpay_order_id=body.razorpay_order_id,
        razorpay_payment_id=body.razorpay_payment_id,
        razorpay_signature=body.razorpay_signature,
    )
    balance = await credit_service.get_balance(session, user_id=user.id)
    return PaymentVerified(order=PaymentOrderOut.model_validate(order), balance=balance)


@router.post(
    "/webhook",
    summary="Razorpay webhook (signed with X-Razorpay-Signature; no session)",
    responses=problem_responses(400, 401),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": {"type": "object"}}},
            "description": "A Razorpay event, verified byte for byte against its signature",
        }
    },
)
async def razorpay_webhook(request: Request, session: SessionDep) -> WebhookAck:
    receipt = await webhook_service.receive_razorpay(
        session,
        body=await request.body(),  # the exact bytes Razorpay signed
        signature=request.headers.get("x-razorpay-signature"),
        event_id=request.headers.get("x-razorpay-event-id"),
    )
    return WebhookAck(event_id=receipt.event_id, duplicate=receipt.duplicate, status=receipt.status)
