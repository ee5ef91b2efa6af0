"""POST /v1/payments/webhook: signatures, storage, dedupe, events, mismatches, refunds."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.models import AuditLog, LedgerEntry, PaymentOrder, WebhookEvent
from outreach.payment import webhooks
from tests.conftest import wait_for_jobs
from tests.fakes.razorpay import FakeRazorpay, SignedWebhook
from tests.payment.conftest import OLD_WEBHOOK_SECRET, balance, create_order, deliver

SIGNUP = 20


async def count(session: AsyncSession, model: type) -> int:
    return await session.scalar(select(func.count()).select_from(model)) or 0


async def audit_actions(session: AsyncSession) -> list[str]:
    return list((await session.scalars(select(AuditLog.action))).all())


async def captured(
    buyer: httpx.AsyncClient, fake: FakeRazorpay, pack_id: str = "pack_100", **pay: Any
) -> dict[str, Any]:
    checkout = await create_order(buyer, pack_id)
    return fake.pay(checkout["razorpay_order_id"], notes=checkout["notes"], **pay)


class TestSignature:
    async def test_captured_event_credits_pack_and_bonus(
        self,
        buyer: httpx.AsyncClient,
        razorpay_side: httpx.AsyncClient,
        fake_razorpay: FakeRazorpay,
        session: AsyncSession,
    ) -> None:
        payment = await captured(buyer, fake_razorpay)
        response = await deliver(
            razorpay_side, fake_razorpay.webhook("payment.captured", payment=payment)
        )
        assert response.status_code == 200
        assert response.json()["status"] == "processed"
        assert response.json()["duplicate"] is False
        assert await balance(buyer) == SIGNUP + 100 + 20
        event = await session.scalar(select(WebhookEvent))
        assert event is not None
        assert (event.status, event.event_type) == ("processed", "payment.captured")
        assert event.payment_order_id is not None
        order = await session.get(PaymentOrder, event.payment_order_id)
        assert order is not None
        assert order.paid_via == "webhook"

    async def test_missing_signature_is_400_and_nothing_stored(
        self,
        buyer: httpx.AsyncClient,
        razorpay_side: httpx.AsyncClient,
        fake_razorpay: FakeRazorpay,
        session: AsyncSession,
    ) -> None:
        webhook = fake_razorpay.webhook(
            "payment.captured", payment=await captured(buyer, fake_razorpay)
        )
        del webhook.headers["X-Razorpay-Signature"]
        response = await deliver(razorpay_side, webhook)
        assert response.status_code == 400
        assert response.json()["code"] == "webhook_signature_missing"
        assert await count(session, WebhookEvent) == 0
        assert await balance(buyer) == SIGNUP

    async def test_wrong_signature_is_401_and_nothing_stored(
        self,
        buyer: httpx.AsyncClient,
        razorpay_side: httpx.AsyncClient,
        fake_razorpay: FakeRazorpay,
        session: AsyncSession,
    ) -> None:
        payment = await captured(buyer, fake_razorpay)
        webhook = fake_razorpay.webhook("payment.captured", payment=payment, secret="not-ours")
        response = await deliver(razorpay_side, webhook)
        assert response.status_code == 401
        assert response.json()["code"] == "webhook_signature_invalid"
        assert await count(session, WebhookEvent) == 0
        assert await balance(buyer) == SIGNUP

    async def test_body_altered_by_one_byte_is_401(
        self,
        buyer: httpx.AsyncClient,
        razorpay_side: httpx.AsyncClient,
        fake_razorpay: FakeRazorpay,
        session: AsyncSession,
    ) -> None:
        webhook = fake_razorpay.webhook(
            "payment.captured", payment=await captured(buyer, fake_razorpay)
        )
        altered = SignedWebhook(webhook.tampered(), webhook.headers, webhook.event_id)
        assert len(altered.body) == len(webhook.body)
        response = await deliver(razorpay_side, altered)
        assert response.status_code == 401
        assert await count(session, WebhookEvent) == 0
        assert await balance(buyer) == SIGNUP

    async def test_reformatted_json_with_the_original_signature_is_401(
        self,
        buyer: httpx.AsyncClient,
        razorpay_side: httpx.AsyncClient,
        fake_razorpay: FakeRazorpay,
    ) -> None:
        import json

        webhook = fake_razorpay.webhook(
            "payment.captured", payment=await captured(buyer, fake_razorpay)
        )
        pretty = json.dumps(json.loads(webhook.body), indent=2).encode()
        response = await deliver(
            razorpay_side, SignedWebhook(pretty, webhook.headers, webhook.event_id)
        )
        assert response.status_code == 401

    async def test_the_previous_secret_still_verifies_during_rotation(
        self,
        buyer: httpx.AsyncClient,
        razorpay_side: httpx.AsyncClient,
        fake_razorpay: FakeRazorpay,
    ) -> None:
        payment = await captured(buyer, fake_razorpay)
        webhook = fake_razorpay.webhook(
            "payment.captured", payment=payment, secret=OLD_WEBHOOK_SECRET
        )
        response = await deliver(razorpay_side, webhook)
        assert response.status_code == 200
        assert await balance(buyer) == SIGNUP + 120

    async def test_signed_garbage_is_400(
        self, razorpay_side: httpx.AsyncClient, fake_razorpay: FakeRazorpay, session: AsyncSession
    ) -> None:
        from outreach.payment.signatures import webhook_signature
        from tests.fakes.razorpay import WEBHOOK_SECRET

        body = b"not json"
        response = await razorpay_side.post(
            "/v1/payments/webhook",
            content=body,
            headers={"X-Razorpay-Signature": webhook_signature(WEBHOOK_SECRET, body)},
        )
        assert response.status_code == 400
        assert response.json()["code"] == "webhook_payload_invalid"
        assert await count(session, WebhookEvent) == 0

    async def test_needs_no_session_or_csrf_token(
        self,
        buyer: httpx.AsyncClient,
        razorpay_side: httpx.AsyncClient,
        fake_razorpay: FakeRazorpay,
    ) -> None:
        webhook = fake_razorpay.webhook(
            "payment.captured", payment=await captured(buyer, fake_razorpay)
        )
        headers = {**webhook.headers, "Origin": "https://api.razorpay.com"}
        response = await razorpay_side.post(
            "/v1/payments/webhook", content=webhook.body, headers=headers
        )
        assert response.status_code == 200


class TestDeduplication:
    async def test_a_redelivered_event_changes_nothing(
        self,
        buyer: httpx.AsyncClient,
        razorpay_side: httpx.AsyncClient,
        fake_razorpay: FakeRazorpay,
        session: AsyncSession,
    ) -> None:
        webhook = fake_razorpay.webhook(
            "payment.captured", payment=await captured(buyer, fake_razorpay)
        )
        await deliver(razorpay_side, webhook)
        again = await deliver(razorpay_side, webhook)
        assert again.status_code == 200
        assert again.json() == {
            "event_id": webhook.event_id,
            "duplicate": True,
            "status": "duplicate",
        }
        assert await count(session, WebhookEvent) == 1
        assert await balance(buyer) == SIGNUP + 120

    async def test_captured_and_order_paid_for_one_payment_credit_once(
        self,
        buyer: httpx.AsyncClient,
        razorpay_side: httpx.AsyncClient,
        fake_razorpay: FakeRazorpay,
        session: AsyncSession,
    ) -> None:
        payment = await captured(buyer, fake_razorpay, "pack_2000")
        order = fake_razorpay.order(payment["order_id"])
        paid = await deliver(
            razorpay_side, fake_razorpay.webhook("order.paid", payment=payment, order=order)
        )
        assert paid.json()["status"] == "processed"
        again = await deliver(
            razorpay_side, fake_razorpay.webhook("payment.captured", payment=payment)
        )
        assert again.json()["status"] == "ignored"
        assert await balance(buyer) == SIGNUP + 2000 + 400
        reasons = (await session.scalars(select(LedgerEntry.reason))).all()
        assert sorted(reasons) == ["purchase", "purchase_bonus", "signup_grant"]

    async def test_without_an_event_id_identical_bodies_are_one_event(
        self,
        buyer: httpx.AsyncClient,
        razorpay_side: httpx.AsyncClient,
        fake_razorpay: FakeRazorpay,
        session: AsyncSession,
    ) -> None:
        webhook = fake_razorpay.webhook(
            "payment.captured", payment=await captured(buyer, fake_razorpay)
        )
        del webhook.headers["X-Razorpay-Event-Id"]
        await deliver(razorpay_side, webhook)
        assert (await deliver(razorpay_side, webhook)).json()["duplicate"] is True
        assert await count(session, WebhookEvent) == 1

    async def test_unhandled_event_types_are_stored_and_ignored(
        self,
        buyer: httpx.AsyncClient,
        razorpay_side: httpx.AsyncClient,
        fake_razorpay: FakeRazorpay,
        session: AsyncSession,
    ) -> None:
        payment = await captured(buyer, fake_razorpay, status="authorized")
        response = await deliver(
            razorpay_side, fake_razorpay.webhook("payment.authorized", payment=payment)
        )
        assert response.json()["status"] == "ignored"
        assert await count(session, WebhookEvent) == 1
        assert await balance(buyer) == SIGNUP


class TestMismatch:
    """Signed, but not consistent with our order: 200, stored, audited, no credits."""

    async def assert_mismatch(
        self, response: httpx.Response, session: AsyncSession, buyer: httpx.AsyncClient
    ) -> WebhookEvent:
        assert response.status_code == 200
        assert response.json()["status"] == "mismatch"
        event = await session.scalar(select(WebhookEvent))
        assert event is not None
        assert event.status == "mismatch"
        assert "payment.mismatch" in await audit_actions(session)
        assert await balance(buyer) == SIGNUP
        assert await count(session, LedgerEntry) == 1  # the sign-up grant only
        return event

    async def test_different_amount(
        self,
        buyer: httpx.AsyncClient,
        razorpay_side: httpx.AsyncClient,
        fake_razorpay: FakeRazorpay,
        session: AsyncSession,
    ) -> None:
        from prometheus_client import REGISTRY

        def mismatches() -> float:
            labels = {"source": "webhook"}
            return REGISTRY.get_sample_value("outreach_payment_mismatches_total", labels) or 0.0

        before = mismatches()
        payment = await captured(buyer, fake_razorpay, amount=100)
        response = await deliver(
            razorpay_side, fake_razorpay.webhook("payment.captured", payment=payment)
        )
        event = await self.assert_mismatch(response, session, buyer)
        assert event.detail == "amount 100 does not match the order's 19900"
        assert mismatches() == before + 1  # what operators alert on

    async def test_different_currency(
        self,
        buyer: httpx.AsyncClient,
        razorpay_side: httpx.AsyncClient,
        fake_razorpay: FakeRazorpay,
        session: AsyncSession,
    ) -> None:
        payment = await captured(buyer, fake_razorpay, currency="USD")
        response = await deliver(
            razorpay_side, fake_razorpay.webhook("payment.captured", payment=payment)
        )
        await self.assert_mismatch(response, session, buyer)

    async def test_an_order_we_never_created(
        self,
        buyer: httpx.AsyncClient,
        razorpay_side: httpx.AsyncClient,
        fake_razorpay: FakeRazorpay,
        session: AsyncSession,
    ) -> None:
        payment = await captured(buyer, fake_razorpay)
        payment["order_id"] = "order_NotOursAtAll01"
        response = await deliver(
            razorpay_side, fake_razorpay.webhook("payment.captured", payment=payment)
        )
        event = await self.assert_mismatch(response, session, buyer)
        assert event.payment_order_id is None

    async def test_someone_elses_order(
        self,
        buyer: httpx.AsyncClient,
        razorpay_side: httpx.AsyncClient,
        fake_razorpay: FakeRazorpay,
        session: AsyncSession,
    ) -> None:
        checkout = await create_order(buyer)
        notes = {**checkout["notes"], "outreach_user_id": "00000000-0000-0000-0000-000000000001"}
        payment = fake_razorpay.pay(checkout["razorpay_order_id"], notes=notes)
        response = await deliver(
            razorpay_side, fake_razorpay.webhook("payment.captured", payment=payment)
        )
        event = await self.assert_mismatch(response, session, buyer)
        assert event.detail == "the payment names another user"

    async def test_order_paid_whose_order_entity_is_another_receipt(
        self,
        buyer: httpx.AsyncClient,
        razorpay_side: httpx.AsyncClient,
        fake_razorpay: FakeRazorpay,
        session: AsyncSession,
    ) -> None:
        payment = await captured(buyer, fake_razorpay)
        order = {
            **fake_razorpay.order(payment["order_id"]),
            "receipt": "another-receipt",
            "notes": [],
        }
        response = await deliver(
            razorpay_side, fake_razorpay.webhook("order.paid", payment=payment, order=order)
        )
        await self.assert_mismatch(response, session, buyer)

    async def test_malformed_payload(
        self,
        buyer: httpx.AsyncClient,
        razorpay_side: httpx.AsyncClient,
        fake_razorpay: FakeRazorpay,
        session: AsyncSession,
    ) -> None:
        response = await deliver(
            razorpay_side, fake_razorpay.webhook("payment.captured", payment={"id": "pay_x"})
        )
        event = await self.assert_mismatch(response, session, buyer)
        assert event.detail == "payload.payment.entity is missing or malformed"

    async def test_a_replayed_mismatch_changes_nothing(
        self,
        buyer: httpx.AsyncClient,
        razorpay_side: httpx.AsyncClient,
        fake_razorpay: FakeRazorpay,
        session: AsyncSession,
    ) -> None:
        payment = await captured(buyer, fake_razorpay, amount=100)
        webhook = fake_razorpay.webhook("payment.captured", payment=payment)
        await deliver(razorpay_side, webhook)
        assert (await deliver(razorpay_side, webhook)).json()["duplicate"] is True
        assert (await audit_actions(session)).count("payment.mismatch") == 1


class TestFailedPayments:
    async def test_failed_then_captured(
        self,
        buyer: httpx.AsyncClient,
        razorpay_side: httpx.AsyncClient,
        fake_razorpay: FakeRazorpay,
    ) -> None:
        checkout = await create_order(buyer)
        failed = fake_razorpay.pay(checkout["razorpay_order_id"], status="failed")
        response = await deliver(
            razorpay_side, fake_razorpay.webhook("payment.failed", payment=failed)
        )
        assert response.json()["status"] == "processed"
        orders = (await buyer.get("/v1/payments/orders")).json()["items"]
        assert (orders[0]["status"], orders[0]["failure_reason"]) == (
            "failed",
            "Payment was declined by the bank",
        )
        # The customer retries in the same Checkout and it works.
        paid = fake_razorpay.pay(checkout["razorpay_order_id"])
        await deliver(razorpay_side, fake_razorpay.webhook("payment.captured", payment=paid))
        orders = (await buyer.get("/v1/payments/orders")).json()["items"]
        assert (orders[0]["status"], orders[0]["failure_reason"]) == ("paid", None)
        assert await balance(buyer) == SIGNUP + 120

    async def test_a_late_failure_does_not_undo_a_payment(
        self,
        buyer: httpx.AsyncClient,
        razorpay_side: httpx.AsyncClient,
        fake_razorpay: FakeRazorpay,
    ) -> None:
        checkout = await create_order(buyer)
        failed = fake_razorpay.pay(checkout["razorpay_order_id"], status="failed")
        paid = fake_razorpay.pay(checkout["razorpay_order_id"])
        await deliver(razorpay_side, fake_razorpay.webhook("payment.captured", payment=paid))
        response = await deliver(
            razorpay_side, fake_razorpay.webhook("payment.failed", payment=failed)
        )
        assert response.json()["status"] == "ignored"
        orders = (await buyer.get("/v1/payments/orders")).json()["items"]
        assert orders[0]["status"] == "paid"


class TestRefunds:
    async def pay(
        self, buyer: httpx.AsyncClient, side: httpx.AsyncClient, fake: FakeRazorpay
    ) -> dict[str, Any]:
        payment = await captured(buyer, fake, "pack_500")
        await deliver(side, fake.webhook("payment.captured", payment=payment))
        return payment

    async def test_full_refund_takes_back_pack_and_bonus(
        self,
        buyer: httpx.AsyncClient,
        razorpay_side: httpx.AsyncClient,
        fake_razorpay: FakeRazorpay,
        session: AsyncSession,
    ) -> None:
        payment = await self.pay(buyer, razorpay_side, fake_razorpay)
        assert await balance(buyer) == SIGNUP + 600
        refund = fake_razorpay.refund(payment["id"])
        webhook = fake_razorpay.webhook(
            "refund.processed", refund=refund, payment=fake_razorpay.payments[payment["id"]]
        )
        response = await deliver(razorpay_side, webhook)
        assert response.json()["status"] == "processed"
        assert await balance(buyer) == SIGNUP
        order = (await buyer.get("/v1/payments/orders")).json()["items"][0]
        assert (
            order["status"],
            order["refunded_paise"],
            order["clawed_back_credits"],
            order["debt_credits"],
        ) == (
            "refunded",
            79_900,
            600,
            0,
        )
        assert "payment.refund" in await audit_actions(session)
        # Redelivered under a new event id: the refund is already applied.
        again = fake_razorpay.webhook(
            "refund.processed", refund=refund, payment=fake_razorpay.payments[payment["id"]]
        )
        assert (await deliver(razorpay_side, again)).json()["status"] == "ignored"
        assert await balance(buyer) == SIGNUP

    async def test_spent_credits_become_debt_on_the_order(
        self,
        buyer: httpx.AsyncClient,
        razorpay_side: httpx.AsyncClient,
        fake_razorpay: FakeRazorpay,
        session: AsyncSession,
    ) -> None:
        from outreach.credits.service import credit_service
        from outreach.models import User

        payment = await self.pay(buyer, razorpay_side, fake_razorpay)
        user = await session.scalar(select(User).where(User.email == "buyer@example.com"))
        assert user is not None
        await credit_service.apply_ledger_entry(
            session,
            user_id=user.id,
            delta=-550,
            reason="campaign_schedule",
            ref="c1",
            idempotency_key="spend",
        )
        await session.commit()  # a savepoint of the test's outer transaction
        refund = fake_razorpay.refund(payment["id"])
        webhook = fake_razorpay.webhook(
            "refund.processed", refund=refund, payment=fake_razorpay.payments[payment["id"]]
        )
        assert (await deliver(razorpay_side, webhook)).status_code == 200
        assert await balance(buyer) == 0
        order = (await buyer.get("/v1/payments/orders")).json()["items"][0]
        assert (order["clawed_back_credits"], order["debt_credits"]) == (70, 530)
        audit = await session.scalar(select(AuditLog).where(AuditLog.action == "payment.refund"))
        assert audit is not None
        assert (audit.details["clawed_back"], audit.details["debt"]) == (70, 530)

    async def test_partial_refunds_take_back_a_proportional_share(
        self,
        buyer: httpx.AsyncClient,
        razorpay_side: httpx.AsyncClient,
        fake_razorpay: FakeRazorpay,
    ) -> None:
        payment = await self.pay(buyer, razorpay_side, fake_razorpay)
        first = fake_razorpay.refund(payment["id"], amount=39_950)  # half
        await deliver(
            razorpay_side,
            fake_razorpay.webhook(
                "refund.processed", refund=first, payment=fake_razorpay.payments[payment["id"]]
            ),
        )
        assert await balance(buyer) == SIGNUP + 300
        order = (await buyer.get("/v1/payments/orders")).json()["items"][0]
        assert order["status"] == "paid"
        rest = fake_razorpay.refund(payment["id"])
        await deliver(
            razorpay_side,
            fake_razorpay.webhook(
                "refund.processed", refund=rest, payment=fake_razorpay.payments[payment["id"]]
            ),
        )
        assert await balance(buyer) == SIGNUP
        order = (await buyer.get("/v1/payments/orders")).json()["items"][0]
        assert (order["status"], order["clawed_back_credits"]) == ("refunded", 600)

    async def test_refund_before_capture_applies_the_capture_first(
        self,
        buyer: httpx.AsyncClient,
        razorpay_side: httpx.AsyncClient,
        fake_razorpay: FakeRazorpay,
    ) -> None:
        payment = await captured(buyer, fake_razorpay, "pack_500")
        refund = fake_razorpay.refund(payment["id"])
        await deliver(
            razorpay_side,
            fake_razorpay.webhook(
                "refund.processed", refund=refund, payment=fake_razorpay.payments[payment["id"]]
            ),
        )
        late = await deliver(
            razorpay_side, fake_razorpay.webhook("payment.captured", payment=payment)
        )
        assert late.json()["status"] == "ignored"
        assert await balance(buyer) == SIGNUP
        order = (await buyer.get("/v1/payments/orders")).json()["items"][0]
        assert order["status"] == "refunded"

    async def test_refund_larger_than_the_payment_is_a_mismatch(
        self,
        buyer: httpx.AsyncClient,
        razorpay_side: httpx.AsyncClient,
        fake_razorpay: FakeRazorpay,
        session: AsyncSession,
    ) -> None:
        payment = await self.pay(buyer, razorpay_side, fake_razorpay)
        refund = {**fake_razorpay.refund(payment["id"]), "amount": 999_999}
        response = await deliver(
            razorpay_side, fake_razorpay.webhook("refund.processed", refund=refund, payment=payment)
        )
        assert response.json()["status"] == "mismatch"
        assert await balance(buyer) == SIGNUP + 600


class TestProcessingFailure:
    async def test_event_is_kept_and_a_job_retries_it(
        self,
        buyer: httpx.AsyncClient,
        razorpay_side: httpx.AsyncClient,
        fake_razorpay: FakeRazorpay,
        session: AsyncSession,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        real = webhooks.HANDLERS["payment.captured"]
        calls = {"n": 0}

        async def flaky(session: AsyncSession, payload: dict[str, Any]) -> Any:
            calls["n"] += 1
            if calls["n"] == 1:
                raise RuntimeError("database hiccup")
            return await real(session, payload)

        monkeypatch.setitem(webhooks.HANDLERS, "payment.captured", flaky)
        webhook = fake_razorpay.webhook(
            "payment.captured", payment=await captured(buyer, fake_razorpay)
        )
        response = await deliver(razorpay_side, webhook)
        assert response.status_code == 200
        assert response.json()["status"] == "received"
        await wait_for_jobs()
        assert calls["n"] == 2
        event = await session.scalar(select(WebhookEvent).execution_options(populate_existing=True))
        assert event is not None
        assert (event.status, event.attempts) == ("processed", 2)
        assert await balance(buyer) == SIGNUP + 120
