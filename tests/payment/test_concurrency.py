"""Races with really committed transactions (on PostgreSQL, real concurrent writers).

The proof the issue asks for: the same ``payment.captured`` webhook replayed 100
times at once, plus the checkout callback, credit the pack once and the bonus once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI
from sqlalchemy import func, select

from outreach.config import Settings
from outreach.kit.db import Database
from outreach.models import LedgerEntry, User, WebhookEvent
from tests.conftest import make_client, sign_in
from tests.fakes.razorpay import FakeRazorpay
from tests.payment.conftest import balance, create_order, deliver, started_app

SIGNUP = 20


@pytest.fixture
async def live_app(
    payment_settings: Settings, committing_database: Database, settings: Settings
) -> AsyncIterator[FastAPI]:
    async for app in started_app(payment_settings, committing_database, settings):
        yield app


async def ledger(database: Database, email: str) -> list[tuple[str, int, str]]:
    async with database.session() as session:
        rows = await session.execute(
            select(LedgerEntry.reason, LedgerEntry.delta, LedgerEntry.idempotency_key)
            .join(User, User.id == LedgerEntry.user_id)
            .where(User.email == email, LedgerEntry.reason.in_(["purchase", "purchase_bonus"]))
            .order_by(LedgerEntry.reason)
        )
        return [(r, d, k) for r, d, k in rows]


async def test_100_replays_of_one_webhook_plus_the_callback_credit_once(
    live_app: FastAPI, committing_database: Database, fake_razorpay: FakeRazorpay
) -> None:
    async with make_client(live_app) as buyer, make_client(live_app) as razorpay_side:
        await sign_in(buyer, "racer@example.com")
        checkout = await create_order(buyer, "pack_500")
        payment = fake_razorpay.pay(checkout["razorpay_order_id"], notes=checkout["notes"])
        webhook = fake_razorpay.webhook("payment.captured", payment=payment)
        callback = fake_razorpay.checkout_response(checkout["razorpay_order_id"], payment["id"])

        replays = [deliver(razorpay_side, webhook) for _ in range(100)]
        responses = await asyncio.gather(
            *replays[:50], buyer.post("/v1/payments/verify", json=callback), *replays[50:]
        )

        assert [r.status_code for r in responses] == [200] * 101
        webhook_answers = [r.json() for r in responses if "duplicate" in r.json()]
        assert sum(not a["duplicate"] for a in webhook_answers) == 1
        assert await balance(buyer) == SIGNUP + 500 + 100
    assert await ledger(committing_database, "racer@example.com") == [
        ("purchase", 500, f"razorpay:{payment['id']}:purchase"),
        ("purchase_bonus", 100, f"razorpay:{payment['id']}:purchase_bonus"),
    ]
    async with committing_database.session() as session:
        stored = select(func.count()).where(WebhookEvent.event_id == webhook.event_id)
        assert await session.scalar(stored) == 1


async def test_distinct_events_and_callbacks_racing_credit_once(
    live_app: FastAPI, committing_database: Database, fake_razorpay: FakeRazorpay
) -> None:
    """Different event ids (``payment.captured``, ``order.paid``, redeliveries Razorpay
    numbers anew) and repeated callbacks: the order row lock decides, not the dedupe."""
    async with make_client(live_app) as buyer, make_client(live_app) as razorpay_side:
        await sign_in(buyer, "racer2@example.com")
        checkout = await create_order(buyer, "pack_100")
        payment = fake_razorpay.pay(checkout["razorpay_order_id"], notes=checkout["notes"])
        order = fake_razorpay.order(checkout["razorpay_order_id"])
        callback = fake_razorpay.checkout_response(checkout["razorpay_order_id"], payment["id"])
        calls = []
        for i in range(30):
            event = "order.paid" if i % 2 else "payment.captured"
            calls.append(
                deliver(razorpay_side, fake_razorpay.webhook(event, payment=payment, order=order))
            )
            calls.append(buyer.post("/v1/payments/verify", json=callback))
        responses = await asyncio.gather(*calls)
        assert {r.status_code for r in responses} == {200}
        assert await balance(buyer) == SIGNUP + 100 + 20
    assert [(r, d) for r, d, _ in await ledger(committing_database, "racer2@example.com")] == [
        ("purchase", 100),
        ("purchase_bonus", 20),
    ]


async def test_two_first_purchases_at_once_earn_one_bonus(
    live_app: FastAPI, committing_database: Database, fake_razorpay: FakeRazorpay
) -> None:
    async with make_client(live_app) as buyer, make_client(live_app) as razorpay_side:
        await sign_in(buyer, "twice@example.com")
        payments = []
        for _ in range(2):
            checkout = await create_order(buyer, "pack_100")
            payments.append(fake_razorpay.pay(checkout["razorpay_order_id"]))
        responses = await asyncio.gather(
            *[
                deliver(razorpay_side, fake_razorpay.webhook("payment.captured", payment=p))
                for p in payments
                for _ in range(5)
            ]
        )
        assert {r.status_code for r in responses} == {200}
        assert await balance(buyer) == SIGNUP + 100 + 100 + 20
    reasons = [r for r, _, _ in await ledger(committing_database, "twice@example.com")]
    assert sorted(reasons) == ["purchase", "purchase", "purchase_bonus"]
