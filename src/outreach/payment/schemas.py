from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from outreach.models import PaymentOrderStatus


class PackOut(BaseModel):
    id: str
    credits: int
    amount_paise: int = Field(description="Price in paise (₹1 = 100 paise)")
    currency: str
    first_purchase_bonus_credits: int = Field(
        description="Extra credits on your first purchase (0 once you have bought)"
    )


class PacksOut(BaseModel):
    packs: list[PackOut]
    first_purchase_bonus_percent: int
    first_purchase: bool = Field(description="Whether your next purchase earns the bonus")


class PaymentOrderCreate(BaseModel):
    pack_id: str = Field(max_length=50, examples=["pack_500"])


class PaymentOrderOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    pack_id: str
    credits: int
    bonus_credits: int
    amount_paise: int
    currency: str
    status: PaymentOrderStatus
    razorpay_order_id: str
    razorpay_payment_id: str | None
    failure_reason: str | None
    refunded_paise: int
    clawed_back_credits: int
    debt_credits: int = Field(description="Refunded credits the balance could not cover")
    created_at: datetime
    paid_at: datetime | None


class CheckoutPrefill(BaseModel):
    email: str
    name: str | None = None


class CheckoutOut(BaseModel):
    """Pass ``checkout`` to Razorpay Checkout; its handler's response goes to
    ``POST /v1/payments/verify``."""

    order: PaymentOrderOut
    key_id: str = Field(description="Checkout option `key`")
    razorpay_order_id: str = Field(description="Checkout option `order_id`")
    amount: int = Field(description="Checkout option `amount`, in paise")
    currency: str
    name: str
    description: str
    prefill: CheckoutPrefill
    notes: dict[str, str]


class PaymentVerify(BaseModel):
    razorpay_order_id: str = Field(min_length=1, max_length=64)
    razorpay_payment_id: str = Field(min_length=1, max_length=64)
    razorpay_signature: str = Field(min_length=1, max_length=128)


class PaymentVerified(BaseModel):
    order: PaymentOrderOut
    balance: int = Field(description="Your credit balance now")


class WebhookAck(BaseModel):
    event_id: str
    duplicate: bool
    status: str = Field(description="processed, ignored, mismatch, received or duplicate")
