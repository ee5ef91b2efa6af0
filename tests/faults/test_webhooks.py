"""Razorpay webhooks delivered twice and out of order.

One purchase (pack_500: 500 credits + the 20 % first-purchase bonus) produces
four events: ``payment.failed`` for an earlier attempt, ``payment.captured``,
``order.paid`` and ``refund.processed`` for half the amount. Razorpay delivers
each at least once, in any order, sometimes again under a new event id. In
every one of the 24 orders, each event delivered twice, and once more all at
once, the credits are exact: pack and bonus credited once, half of them taken
back once, order ``paid``.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.config import Settings
from outreach.kit.db import Database
from outreach.models import LedgerEntry, User
from tests.conftest import make_client, sign_in
from tests.fakes.razorpay import FakeRazorpay, SignedWebhook
from tests.faults.invariants import check_invariants
from tests.payment.conftest import balance, create_order, deliver, started_app, with_razorpay

SIGNUP, PACK, BONUS = 20, 500, 100
HALF_REFUND_PAISE = 39_950  # half of ₹799
EVENTS = ["payment.failed", "payment.captured", "order.paid", "refund.processed"]


async def purchase_events(buyer: httpx.AsyncClient, fake: FakeRazorpay) -> dict[str, SignedWebhook]:
    """The four signed events of one purchase, built before any is delivered."""
    checkout = await create_order(buyer, "pack_500")
    order_id = checkout["razorpay_order_id"]
    failed = fake.pay(order_id, status="failed")
    paid = fake.pay(order_id, notes=checkout["notes"])
    order = fake.order(order_id)
    refund = fake.refund(paid["id"], amount=HALF_REFUND_PAISE)
    return {
        "payment.failed": fake.webhook("payment.failed", payment=failed),
        "payment.captured": fake.webhook("payment.captured", payment=paid),
        "order.paid": fake.webhook("order.paid", payment=paid, order=order),
        "refund.processed": fake.webhook(
            "refund.processed", refund=refund, payment=fake.payments[paid["id"]]
        ),
    }


def redelivered(fake: FakeRazorpay, webhook: SignedWebhook) -> SignedWebhook:
    """The same event body under a new event id (Razorpay numbers some retries anew)."""
    again = SignedWebhook(
        body=webhook.body, headers=dict(webhook.headers), event_id=f"{webhook.event_id}r"
    )
    again.headers["X-Razorpay-Event-Id"] = again.event_id
    return again


async def assert_credited_exactly(session: AsyncSession, email: str) -> None:
    entries = (
        await session.execute(
            select(LedgerEntry.reason, LedgerEntry.delta)
            .join(User, User.id == LedgerEntry.user_id)
            .where(User.email == email)
        )
    ).all()
    assert sorted(entries) == sorted(
        [
            ("signup_grant", SIGNUP),
            ("purchase", PACK),
            ("purchase_bonus", BONUS),
            ("purchase_refund", -(PACK + BONUS) // 2),
        ]
    ), email


async def test_every_order_each_twice_credits_exactly(
    many_buyers_app: FastAPI, fake_razorpay: FakeRazorpay, session: AsyncSession
) -> None:
    async with make_client(many_buyers_app) as razorpay_side:
        for number, order in enumerate(itertools.permutations(EVENTS)):
            email = f"buyer{number}@example.com"
            async with make_client(many_buyers_app) as buyer:
                await sign_in(buyer, email)
                events = await purchase_events(buyer, fake_razorpay)
                for name in order:
                    for _ in range(2):
                        response = await deliver(razorpay_side, events[name])
                        assert response.status_code == 200, (order, response.text)
                late = redelivered(fake_razorpay, events["payment.captured"])
                assert (await deliver(razorpay_side, late)).status_code == 200
                assert await balance(buyer) == SIGNUP + (PACK + BONUS) // 2, order
                orders = (await buyer.get("/v1/payments/orders")).json()["items"]
                assert [o["status"] for o in orders] == ["paid"], order
            await assert_credited_exactly(session, email)
    await check_invariants(session, delivered=[])


@pytest.fixture
async def live_payment_app(
    settings: Settings, committing_database: Database, fake_razorpay: FakeRazorpay
) -> AsyncIterator[FastAPI]:
    async for app in started_app(
        with_razorpay(settings, fake_razorpay), committing_database, settings
    ):
        yield app


@pytest.fixture
async def many_buyers_app(
    settings: Settings, database: Database, fake_razorpay: FakeRazorpay
) -> AsyncIterator[FastAPI]:
    """Payments on, and room for 24 sign-ins a minute from one address."""
    changed = with_razorpay(settings, fake_razorpay, signin_rate_limit=100)
    async for app in started_app(changed, database, settings):
        yield app


@pytest.mark.parametrize("seed", range(3))
async def test_all_at_once_in_any_order_credits_exactly(
    seed: int,
    live_payment_app: FastAPI,
    committing_database: Database,
    fake_razorpay: FakeRazorpay,
) -> None:
    """Really committed and concurrent (real concurrent writers on PostgreSQL):
    every event twice, a redelivery and the checkout callback, shuffled, at once."""
    email = f"racer{seed}@example.com"
    async with make_client(live_payment_app) as buyer:
        await sign_in(buyer, email)
        events = await purchase_events(buyer, fake_razorpay)
        paid = events["payment.captured"]
        calls: list[Any] = [
            *(events[name] for name in EVENTS for _ in range(2)),
            redelivered(fake_razorpay, paid),
        ]
        random.Random(seed).shuffle(calls)
        async with make_client(live_payment_app) as razorpay_side:
            responses = await asyncio.gather(*(deliver(razorpay_side, w) for w in calls))
        assert [r.status_code for r in responses] == [200] * len(calls)
        assert await balance(buyer) == SIGNUP + (PACK + BONUS) // 2
    async with committing_database.session() as session:
        await assert_credited_exactly(session, email)
        await check_invariants(session, delivered=[])
