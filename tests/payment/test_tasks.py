"""The reconciliation job: orders the webhook never confirmed are asked about."""

from __future__ import annotations

from datetime import timedelta

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.kit.clock import Clock
from outreach.models import PaymentOrder
from outreach.payment.tasks import reconcile_orders
from tests.fakes.razorpay import FakeRazorpay
from tests.payment.conftest import balance, create_order, deliver

SIGNUP = 20


async def statuses(buyer: httpx.AsyncClient) -> list[str]:
    return [o["status"] for o in (await buyer.get("/v1/payments/orders")).json()["items"]]


class TestReconcileOrders:
    async def test_credits_a_capture_the_webhook_never_delivered(
        self, buyer: httpx.AsyncClient, fake_razorpay: FakeRazorpay, frozen_clock: Clock
    ) -> None:
        checkout = await create_order(buyer, "pack_500")
        fake_razorpay.pay(checkout["razorpay_order_id"], notes=checkout["notes"])
        assert await reconcile_orders() == 0  # too recent: the webhook may still come
        assert fake_razorpay.requests == [("POST", "/v1/orders")]

        frozen_clock.advance(timedelta(minutes=16))
        assert await reconcile_orders() == 1
        assert await balance(buyer) == SIGNUP + 600
        order = (await buyer.get("/v1/payments/orders")).json()["items"][0]
        assert order["status"] == "paid"
        assert await reconcile_orders() == 0  # paid orders are not asked about again

    async def test_a_late_webhook_after_reconciliation_changes_nothing(
        self,
        buyer: httpx.AsyncClient,
        razorpay_side: httpx.AsyncClient,
        fake_razorpay: FakeRazorpay,
        frozen_clock: Clock,
    ) -> None:
        checkout = await create_order(buyer)
        payment = fake_razorpay.pay(checkout["razorpay_order_id"])
        frozen_clock.advance(timedelta(minutes=16))
        await reconcile_orders()
        response = await deliver(
            razorpay_side, fake_razorpay.webhook("payment.captured", payment=payment)
        )
        assert response.json()["status"] == "ignored"
        assert await balance(buyer) == SIGNUP + 120

    async def test_attempted_failed_and_expired(
        self,
        buyer: httpx.AsyncClient,
        fake_razorpay: FakeRazorpay,
        frozen_clock: Clock,
        session: AsyncSession,
    ) -> None:
        attempted = await create_order(buyer)
        fake_razorpay.pay(attempted["razorpay_order_id"], status="authorized")
        failed = await create_order(buyer)
        fake_razorpay.pay(failed["razorpay_order_id"], status="failed")
        untouched = await create_order(buyer)
        frozen_clock.advance(timedelta(minutes=16))
        assert await reconcile_orders() == 0
        by_id = {
            o["id"]: o["status"] for o in (await buyer.get("/v1/payments/orders")).json()["items"]
        }
        assert by_id == {
            attempted["order"]["id"]: "attempted",
            failed["order"]["id"]: "failed",
            untouched["order"]["id"]: "created",
        }
        looked_up = [path for method, path in fake_razorpay.requests if method == "GET"]
        assert len(looked_up) == 3

        # Checked a minute ago: not asked again until the delay has passed once more.
        fake_razorpay.requests.clear()
        frozen_clock.advance(timedelta(minutes=1))
        await reconcile_orders()
        assert fake_razorpay.requests == []

        frozen_clock.advance(timedelta(hours=24))
        await reconcile_orders()
        by_id = {
            o["id"]: o["status"] for o in (await buyer.get("/v1/payments/orders")).json()["items"]
        }
        assert by_id == {
            attempted["order"]["id"]: "expired",
            failed["order"]["id"]: "failed",
            untouched["order"]["id"]: "expired",
        }
        fake_razorpay.requests.clear()
        frozen_clock.advance(timedelta(hours=1))
        await reconcile_orders()
        assert fake_razorpay.requests == []  # nothing open is left to ask about

    async def test_a_capture_of_another_amount_is_a_mismatch_not_a_credit(
        self,
        buyer: httpx.AsyncClient,
        fake_razorpay: FakeRazorpay,
        frozen_clock: Clock,
        session: AsyncSession,
    ) -> None:
        checkout = await create_order(buyer)
        fake_razorpay.pay(checkout["razorpay_order_id"], amount=100)
        frozen_clock.advance(timedelta(minutes=16))
        assert await reconcile_orders() == 0
        assert await balance(buyer) == SIGNUP
        order = await session.scalar(select(PaymentOrder).execution_options(populate_existing=True))
        assert order is not None
        assert order.checked_at is not None

    async def test_razorpay_down_leaves_orders_for_the_next_run(
        self, buyer: httpx.AsyncClient, fake_razorpay: FakeRazorpay, frozen_clock: Clock
    ) -> None:
        checkout = await create_order(buyer)
        fake_razorpay.pay(checkout["razorpay_order_id"])
        frozen_clock.advance(timedelta(minutes=16))
        fake_razorpay.fail_next = [500, 500, 500]
        assert await reconcile_orders() == 0
        assert await statuses(buyer) == ["created"]
        assert await reconcile_orders() == 1
        assert await statuses(buyer) == ["paid"]


async def test_without_keys_the_job_does_nothing(settings: object) -> None:
    assert await reconcile_orders() == 0
