"""The Razorpay REST client against the fake, and the fake against the official SDK."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import razorpay

from outreach.config import Settings
from outreach.payment.gateway import (
    PaymentsDisabled,
    RazorpayClient,
    RazorpayClients,
    RazorpayRejected,
    RazorpayUnavailable,
)
from tests.fakes.razorpay import KEY_ID, KEY_SECRET, FakeRazorpay
from tests.payment.conftest import with_razorpay


def client_for(
    fake: FakeRazorpay, *, secret: str = KEY_SECRET, attempts: int = 3
) -> RazorpayClient:
    http = httpx.AsyncClient(base_url=fake.url, auth=(KEY_ID, secret), timeout=5)
    return RazorpayClient(http, max_attempts=attempts, retry_base=0)


class TestCreateOrder:
    async def test_creates_the_order_with_receipt_and_notes(
        self, fake_razorpay: FakeRazorpay
    ) -> None:
        client = client_for(fake_razorpay)
        order = await client.create_order(
            amount=19_900, currency="INR", receipt="our-order-1", notes={"outreach_user_id": "u1"}
        )
        assert order.id.startswith("order_")
        assert (order.amount, order.currency, order.status) == (19_900, "INR", "created")
        stored = fake_razorpay.order(order.id)
        assert stored["receipt"] == "our-order-1"
        assert stored["notes"] == {"outreach_user_id": "u1"}
        await client.http.aclose()

    async def test_retries_5xx_then_succeeds(self, fake_razorpay: FakeRazorpay) -> None:
        fake_razorpay.fail_next = [500, 503]
        client = client_for(fake_razorpay)
        order = await client.create_order(amount=19_900, currency="INR", receipt="r", notes={})
        assert order.status == "created"
        assert fake_razorpay.requests == [("POST", "/v1/orders")] * 3
        await client.http.aclose()

    async def test_gives_up_after_the_last_attempt(self, fake_razorpay: FakeRazorpay) -> None:
        fake_razorpay.fail_next = [500, 500, 500]
        client = client_for(fake_razorpay)
        with pytest.raises(RazorpayUnavailable) as caught:
            await client.create_order(amount=19_900, currency="INR", receipt="r", notes={})
        assert caught.value.headers["Retry-After"] == "30"
        assert fake_razorpay.orders == {}
        await client.http.aclose()

    async def test_wrong_keys_are_rejected_without_retry(self, fake_razorpay: FakeRazorpay) -> None:
        client = client_for(fake_razorpay, secret="wrong")
        with pytest.raises(RazorpayRejected, match="Authentication failed"):
            await client.create_order(amount=19_900, currency="INR", receipt="r", notes={})
        assert len(fake_razorpay.requests) == 1
        await client.http.aclose()

    async def test_unreachable_host_is_unavailable(self) -> None:
        http = httpx.AsyncClient(base_url="http://127.0.0.1:9", timeout=1)
        client = RazorpayClient(http, max_attempts=2, retry_base=0)
        with pytest.raises(RazorpayUnavailable):
            await client.order_payments("order_x")
        await http.aclose()


class TestOrderPayments:
    async def test_lists_payments_of_the_order(self, fake_razorpay: FakeRazorpay) -> None:
        client = client_for(fake_razorpay)
        order = await client.create_order(amount=79_900, currency="INR", receipt="r", notes={})
        failed = fake_razorpay.pay(order.id, status="failed")
        paid = fake_razorpay.pay(order.id)
        payments = await client.order_payments(order.id)
        assert [(p.id, p.status) for p in payments] == [
            (failed["id"], "failed"),
            (paid["id"], "captured"),
        ]
        assert payments[1].notes == {}  # Razorpay's empty notes are []
        await client.http.aclose()


class TestClientHolder:
    def test_without_keys_payments_are_disabled(self, settings: Settings) -> None:
        with pytest.raises(PaymentsDisabled):
            RazorpayClients().get(settings)

    async def test_one_client_per_configuration(
        self, settings: Settings, fake_razorpay: FakeRazorpay
    ) -> None:
        holder = RazorpayClients()
        configured = with_razorpay(settings, fake_razorpay)
        first = holder.get(configured)
        assert holder.get(configured) is first
        assert (
            holder.get(with_razorpay(settings, fake_razorpay, razorpay_timeout_seconds=3))
            is not first
        )
        await holder.aclose()


class TestFakeSpeaksTheSdkProtocol:
    """The official SDK, pointed at the fake, gets what it gets from Razorpay."""

    async def test_sdk_creates_and_reads_orders_and_payments(
        self, fake_razorpay: FakeRazorpay
    ) -> None:
        sdk = razorpay.Client(auth=(KEY_ID, KEY_SECRET), base_url=fake_razorpay.url)
        order = await asyncio.to_thread(
            sdk.order.create, {"amount": 249_900, "currency": "INR", "receipt": "r-1"}
        )
        assert order["entity"] == "order"
        payment = fake_razorpay.pay(order["id"])
        payments = await asyncio.to_thread(sdk.order.payments, order["id"])
        assert payments["items"][0]["id"] == payment["id"]
        fetched = await asyncio.to_thread(sdk.payment.fetch, payment["id"])
        assert fetched["status"] == "captured"
        # And what Checkout returns verifies with the SDK's own check.
        response = fake_razorpay.checkout_response(order["id"], payment["id"])
        assert sdk.utility.verify_payment_signature(response)

    async def test_sdk_sees_the_fakes_validation_errors(self, fake_razorpay: FakeRazorpay) -> None:
        sdk = razorpay.Client(auth=(KEY_ID, KEY_SECRET), base_url=fake_razorpay.url)
        with pytest.raises(razorpay.errors.BadRequestError, match="atleast"):
            await asyncio.to_thread(sdk.order.create, {"amount": 5, "currency": "INR"})
