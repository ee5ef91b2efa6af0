"""/v1/payments through HTTP: packs, orders, the checkout callback, referrals."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.config import Settings
from outreach.kit.db import Database
from outreach.models import LedgerEntry, PaymentOrder, ReferralReward, User
from tests.conftest import make_client, sign_in
from tests.fakes.razorpay import KEY_ID, FakeRazorpay
from tests.payment.conftest import balance, create_order, deliver, started_app

SIGNUP = 20  # credits every new user starts with


async def entries(session: AsyncSession, email: str) -> list[tuple[str, int]]:
    rows = await session.execute(
        select(LedgerEntry.reason, LedgerEntry.delta)
        .join(User, User.id == LedgerEntry.user_id)
        .where(User.email == email)
        .order_by(LedgerEntry.created_at, LedgerEntry.reason)
    )
    return [(reason, delta) for reason, delta in rows]


class TestPacks:
    async def test_lists_the_packs_with_the_first_purchase_bonus(
        self, buyer: httpx.AsyncClient
    ) -> None:
        response = await buyer.get("/v1/payments/packs")
        assert response.status_code == 200
        body = response.json()
        assert body["first_purchase"] is True
        assert body["first_purchase_bonus_percent"] == 20
        assert [
            (p["id"], p["credits"], p["amount_paise"], p["first_purchase_bonus_credits"])
            for p in body["packs"]
        ] == [
            ("pack_100", 100, 19_900, 20),
            ("pack_500", 500, 79_900, 100),
            ("pack_2000", 2000, 249_900, 400),
        ]

    async def test_needs_a_session(self, razorpay_side: httpx.AsyncClient) -> None:
        response = await razorpay_side.get("/v1/payments/packs")
        assert response.status_code == 401


class TestPaymentsDisabled:
    @pytest.fixture
    async def plain_app(self, settings: Settings, database: Database) -> AsyncIterator[FastAPI]:
        async for app in started_app(settings, database, settings):
            yield app

    @pytest.mark.parametrize(
        ("method", "path"),
        [
            ("GET", "/v1/payments/packs"),
            ("GET", "/v1/payments/orders"),
            ("POST", "/v1/payments/orders"),
            ("POST", "/v1/payments/verify"),
            ("POST", "/v1/payments/webhook"),
        ],
    )
    async def test_every_payment_route_answers_503(
        self, plain_app: FastAPI, method: str, path: str
    ) -> None:
        async with make_client(plain_app) as client:
            await sign_in(client, "nokeys@example.com")
            response = await client.request(method, path, json={})
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "payments_disabled"

    async def test_ready_still_passes(self, plain_app: FastAPI) -> None:
        async with make_client(plain_app) as client:
            response = await client.get("/ready")
        assert response.status_code == 200
        assert response.json()["status"] == "ok"


class TestCreateOrder:
    async def test_creates_a_razorpay_order_and_our_row(
        self, buyer: httpx.AsyncClient, fake_razorpay: FakeRazorpay, session: AsyncSession
    ) -> None:
        checkout = await create_order(buyer, "pack_500")
        assert checkout["key_id"] == KEY_ID
        assert (checkout["amount"], checkout["currency"]) == (79_900, "INR")
        assert checkout["prefill"] == {"email": "buyer@example.com", "name": "Priya Buyer"}
        assert checkout["order"]["status"] == "created"
        remote = fake_razorpay.order(checkout["razorpay_order_id"])
        assert remote["receipt"] == checkout["order"]["id"]
        assert remote["amount"] == 79_900
        user = await session.scalar(select(User).where(User.email == "buyer@example.com"))
        assert user is not None
        assert remote["notes"]["outreach_user_id"] == str(user.id)
        assert checkout["notes"] == {
            "outreach_order_id": checkout["order"]["id"],
            "outreach_user_id": str(user.id),
        }
        order = await session.get(PaymentOrder, uuid.UUID(checkout["order"]["id"]))
        assert order is not None
        assert (order.credits, order.status) == (500, "created")

    async def test_idempotency_key_is_required(
        self, buyer: httpx.AsyncClient, fake_razorpay: FakeRazorpay
    ) -> None:
        response = await buyer.post("/v1/payments/orders", json={"pack_id": "pack_100"})
        assert response.status_code == 400
        assert response.json()["code"] == "idempotency_key_missing"
        assert fake_razorpay.orders == {}

    async def test_same_key_replays_without_a_second_razorpay_order(
        self, buyer: httpx.AsyncClient, fake_razorpay: FakeRazorpay
    ) -> None:
        headers = {"Idempotency-Key": "buy-once"}
        first = await buyer.post(
            "/v1/payments/orders", json={"pack_id": "pack_100"}, headers=headers
        )
        again = await buyer.post(
            "/v1/payments/orders", json={"pack_id": "pack_100"}, headers=headers
        )
        assert again.status_code == 200
        assert again.headers["Idempotent-Replayed"] == "true"
        assert again.json() == first.json()
        assert len(fake_razorpay.orders) == 1

    async def test_unknown_pack_is_422_naming_the_field(
        self, buyer: httpx.AsyncClient, fake_razorpay: FakeRazorpay, session: AsyncSession
    ) -> None:
        response = await buyer.post(
            "/v1/payments/orders", json={"pack_id": "pack_1"}, headers={"Idempotency-Key": "k"}
        )
        assert response.status_code == 422
        assert response.json()["code"] == "unknown_pack"
        assert response.json()["errors"][0]["loc"] == ["body", "pack_id"]
        assert fake_razorpay.orders == {}
        assert await session.scalar(select(func.count()).select_from(PaymentOrder)) == 0

    async def test_razorpay_down_is_503_and_nothing_stored(
        self, buyer: httpx.AsyncClient, fake_razorpay: FakeRazorpay, session: AsyncSession
    ) -> None:
        fake_razorpay.fail_next = [502, 502, 502]
        response = await buyer.post(
            "/v1/payments/orders", json={"pack_id": "pack_100"}, headers={"Idempotency-Key": "k"}
        )
        assert response.status_code == 503
        assert response.json()["code"] == "razorpay_unavailable"
        assert response.headers["Retry-After"] == "30"
        assert await session.scalar(select(func.count()).select_from(PaymentOrder)) == 0
        # The error was not stored under the key: a retry once Razorpay is back works.
        retry = await buyer.post(
            "/v1/payments/orders", json={"pack_id": "pack_100"}, headers={"Idempotency-Key": "k"}
        )
        assert retry.status_code == 200


class TestListOrders:
    async def test_lists_only_your_orders_newest_first(
        self, buyer: httpx.AsyncClient, payment_app: FastAPI
    ) -> None:
        first = await create_order(buyer, "pack_100")
        second = await create_order(buyer, "pack_2000")
        async with make_client(payment_app) as other:
            await sign_in(other, "other@example.com")
            await create_order(other, "pack_500")
            response = await buyer.get("/v1/payments/orders")
        assert response.status_code == 200
        ids = [o["id"] for o in response.json()["items"]]
        assert set(ids) == {first["order"]["id"], second["order"]["id"]}
        assert response.json()["items"][0]["status"] == "created"


class TestVerify:
    async def test_full_purchase_order_callback_webhook_balance(
        self,
        buyer: httpx.AsyncClient,
        razorpay_side: httpx.AsyncClient,
        fake_razorpay: FakeRazorpay,
        session: AsyncSession,
    ) -> None:
        checkout = await create_order(buyer, "pack_500")
        payment = fake_razorpay.pay(checkout["razorpay_order_id"], notes=checkout["notes"])
        callback = fake_razorpay.checkout_response(checkout["razorpay_order_id"], payment["id"])
        verified = await buyer.post("/v1/payments/verify", json=callback)
        assert verified.status_code == 200, verified.text
        assert verified.json()["balance"] == SIGNUP + 500 + 100
        order = verified.json()["order"]
        assert (order["status"], order["bonus_credits"]) == ("paid", 100)
        assert order["razorpay_payment_id"] == payment["id"]

        webhook = fake_razorpay.webhook("payment.captured", payment=payment)
        delivered = await deliver(razorpay_side, webhook)
        assert delivered.status_code == 200
        assert delivered.json()["status"] == "ignored"  # already credited by the callback
        paid = fake_razorpay.webhook(
            "order.paid", payment=payment, order=fake_razorpay.order(payment["order_id"])
        )
        assert (await deliver(razorpay_side, paid)).json()["status"] == "ignored"

        assert await balance(buyer) == SIGNUP + 500 + 100
        assert await entries(session, "buyer@example.com") == [
            ("signup_grant", SIGNUP),
            ("purchase", 500),
            ("purchase_bonus", 100),
        ]
        listed = (await buyer.get("/v1/payments/orders")).json()["items"]
        assert [(o["status"], o["paid_at"] is not None) for o in listed] == [("paid", True)]

    async def test_verify_twice_credits_once(
        self, buyer: httpx.AsyncClient, fake_razorpay: FakeRazorpay
    ) -> None:
        checkout = await create_order(buyer)
        payment = fake_razorpay.pay(checkout["razorpay_order_id"])
        callback = fake_razorpay.checkout_response(checkout["razorpay_order_id"], payment["id"])
        first = await buyer.post("/v1/payments/verify", json=callback)
        second = await buyer.post("/v1/payments/verify", json=callback)
        assert first.json()["balance"] == second.json()["balance"] == SIGNUP + 100 + 20

    async def test_second_purchase_gets_no_bonus(
        self, buyer: httpx.AsyncClient, fake_razorpay: FakeRazorpay, session: AsyncSession
    ) -> None:
        for _ in range(2):
            checkout = await create_order(buyer)
            payment = fake_razorpay.pay(checkout["razorpay_order_id"])
            callback = fake_razorpay.checkout_response(checkout["razorpay_order_id"], payment["id"])
            assert (await buyer.post("/v1/payments/verify", json=callback)).status_code == 200
        assert await balance(buyer) == SIGNUP + 100 + 20 + 100
        packs = (await buyer.get("/v1/payments/packs")).json()
        assert packs["first_purchase"] is False
        assert {p["first_purchase_bonus_credits"] for p in packs["packs"]} == {0}

    async def test_bad_signature_is_400_and_nothing_moves(
        self, buyer: httpx.AsyncClient, fake_razorpay: FakeRazorpay, session: AsyncSession
    ) -> None:
        checkout = await create_order(buyer)
        payment = fake_razorpay.pay(checkout["razorpay_order_id"])
        callback = fake_razorpay.checkout_response(checkout["razorpay_order_id"], payment["id"])
        callback["razorpay_signature"] = callback["razorpay_signature"][::-1]
        response = await buyer.post("/v1/payments/verify", json=callback)
        assert response.status_code == 400
        assert response.json()["code"] == "payment_signature_invalid"
        assert response.json()["errors"][0]["loc"] == ["body", "razorpay_signature"]
        assert await balance(buyer) == SIGNUP

    async def test_signature_for_another_payment_is_refused(
        self, buyer: httpx.AsyncClient, fake_razorpay: FakeRazorpay
    ) -> None:
        checkout = await create_order(buyer)
        payment = fake_razorpay.pay(checkout["razorpay_order_id"])
        callback = fake_razorpay.checkout_response(checkout["razorpay_order_id"], payment["id"])
        callback["razorpay_payment_id"] = "pay_SomeoneElses01"
        assert (await buyer.post("/v1/payments/verify", json=callback)).status_code == 400
        assert await balance(buyer) == SIGNUP

    async def test_another_users_order_is_404(
        self, buyer: httpx.AsyncClient, fake_razorpay: FakeRazorpay, payment_app: FastAPI
    ) -> None:
        checkout = await create_order(buyer)
        payment = fake_razorpay.pay(checkout["razorpay_order_id"])
        callback = fake_razorpay.checkout_response(checkout["razorpay_order_id"], payment["id"])
        async with make_client(payment_app) as thief:
            await sign_in(thief, "thief@example.com")
            response = await thief.post("/v1/payments/verify", json=callback)
            assert response.status_code == 404
            assert response.json()["code"] == "payment_order_not_found"
            assert await balance(thief) == SIGNUP
        assert await balance(buyer) == SIGNUP

    async def test_a_second_payment_on_a_paid_order_is_409(
        self, buyer: httpx.AsyncClient, fake_razorpay: FakeRazorpay, session: AsyncSession
    ) -> None:
        checkout = await create_order(buyer)
        order_id = checkout["razorpay_order_id"]
        first = fake_razorpay.pay(order_id)
        await buyer.post(
            "/v1/payments/verify", json=fake_razorpay.checkout_response(order_id, first["id"])
        )
        second = fake_razorpay.pay(order_id)
        response = await buyer.post(
            "/v1/payments/verify", json=fake_razorpay.checkout_response(order_id, second["id"])
        )
        assert response.status_code == 409
        assert response.json()["code"] == "payment_not_applicable"
        assert await balance(buyer) == SIGNUP + 120
        listed = (await buyer.get("/v1/payments/orders")).json()["items"]
        assert [o["razorpay_payment_id"] for o in listed] == [first["id"]]

    async def test_missing_fields_are_422(self, buyer: httpx.AsyncClient) -> None:
        response = await buyer.post("/v1/payments/verify", json={"razorpay_order_id": "order_x"})
        assert response.status_code == 422
        locs = {tuple(e["loc"]) for e in response.json()["errors"]}
        assert ("body", "razorpay_payment_id") in locs


class TestReferral:
    async def test_first_payment_rewards_the_referrer_and_closes_referral_codes(
        self,
        buyer: httpx.AsyncClient,
        payment_app: FastAPI,
        fake_razorpay: FakeRazorpay,
        session: AsyncSession,
    ) -> None:
        async with make_client(payment_app) as referrer:
            await sign_in(referrer, "referrer@example.com")
            code = (await referrer.get("/v1/referrals/me")).json()["code"]
            assert (await buyer.post("/v1/referrals/apply", json={"code": code})).status_code == 200
            checkout = await create_order(buyer)
            payment = fake_razorpay.pay(checkout["razorpay_order_id"])
            callback = fake_razorpay.checkout_response(checkout["razorpay_order_id"], payment["id"])
            assert (await buyer.post("/v1/payments/verify", json=callback)).status_code == 200
            assert await balance(referrer) == SIGNUP + 25

            another = (await referrer.get("/v1/referrals/me")).json()["code"]
        rewards = (await session.scalars(select(ReferralReward))).all()
        assert [(r.trigger, r.credits) for r in rewards] == [("first_payment", 25)]
        buyer_row = await session.scalar(select(User).where(User.email == "buyer@example.com"))
        assert buyer_row is not None
        assert buyer_row.first_paid_at is not None

        # A second purchase rewards nobody again.
        checkout = await create_order(buyer)
        payment = fake_razorpay.pay(checkout["razorpay_order_id"])
        callback = fake_razorpay.checkout_response(checkout["razorpay_order_id"], payment["id"])
        await buyer.post("/v1/payments/verify", json=callback)
        assert await session.scalar(select(func.count()).select_from(ReferralReward)) == 1
        assert another == code

    async def test_after_paying_a_referral_code_is_refused(
        self,
        buyer: httpx.AsyncClient,
        payment_app: FastAPI,
        fake_razorpay: FakeRazorpay,
    ) -> None:
        checkout = await create_order(buyer)
        payment = fake_razorpay.pay(checkout["razorpay_order_id"])
        callback = fake_razorpay.checkout_response(checkout["razorpay_order_id"], payment["id"])
        assert (await buyer.post("/v1/payments/verify", json=callback)).status_code == 200
        async with make_client(payment_app) as friend:
            await sign_in(friend, "friend@example.com")
            code = (await friend.get("/v1/referrals/me")).json()["code"]
        response = await buyer.post("/v1/referrals/apply", json={"code": code})
        assert response.status_code == 409
        assert response.json()["code"] == "referral_after_payment"
