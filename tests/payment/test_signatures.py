"""Our signature code against the official Razorpay SDK: same inputs, same verdicts."""

from __future__ import annotations

import hashlib
import hmac

import pytest
import razorpay
from hypothesis import given, settings
from hypothesis import strategies as st
from razorpay.errors import SignatureVerificationError

from outreach.payment.signatures import (
    payment_signature,
    verify_payment_signature,
    verify_webhook_signature,
    webhook_signature,
)
from tests.fakes.razorpay import KEY_SECRET, WEBHOOK_SECRET, FakeRazorpay

secrets_ = st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=40)
bodies = st.text(alphabet=st.characters(codec="utf-8"), max_size=400)
ids = st.from_regex(r"[A-Za-z0-9_]{1,30}", fullmatch=True)


def sdk_verifies_webhook(body: str, signature: str, secret: str) -> bool:
    try:
        return bool(razorpay.Utility().verify_webhook_signature(body, signature, secret))
    except SignatureVerificationError:
        return False


def sdk_verifies_payment(order_id: str, payment_id: str, signature: str, secret: str) -> bool:
    client = razorpay.Client(auth=("rzp_test_any", secret))
    params = {
        "razorpay_order_id": order_id,
        "razorpay_payment_id": payment_id,
        "razorpay_signature": signature,
    }
    try:
        return bool(client.utility.verify_payment_signature(params))
    except SignatureVerificationError:
        return False


class TestWebhookSignature:
    @settings(max_examples=150, deadline=None)
    @given(body=bodies, secret=secrets_, other_secret=secrets_)
    def test_agrees_with_sdk_for_right_and_wrong_signatures(
        self, body: str, secret: str, other_secret: str
    ) -> None:
        ours = webhook_signature(secret, body.encode())
        wrong = webhook_signature(other_secret, body.encode())
        for signature in (ours, wrong, ours.upper(), ours[:-1], ""):
            expected = sdk_verifies_webhook(body, signature, secret)
            assert verify_webhook_signature(body.encode(), signature, [secret]) is expected
        assert sdk_verifies_webhook(body, ours, secret) is True

    def test_a_signed_razorpay_event_verifies_both_ways(self) -> None:
        event = FakeRazorpay().webhook("payment.captured", payment={"id": "pay_1", "amount": 19900})
        signature = event.headers["X-Razorpay-Signature"]
        assert verify_webhook_signature(event.body, signature, [WEBHOOK_SECRET])
        assert sdk_verifies_webhook(event.body.decode(), signature, WEBHOOK_SECRET)
        tampered = event.tampered()
        assert not verify_webhook_signature(tampered, signature, [WEBHOOK_SECRET])
        assert not sdk_verifies_webhook(tampered.decode(), signature, WEBHOOK_SECRET)

    def test_signature_is_over_raw_bytes_not_reserialised_json(self) -> None:
        compact = b'{"event":"payment.captured","payload":{}}'
        spaced = b'{"event": "payment.captured", "payload": {}}'
        signature = webhook_signature(WEBHOOK_SECRET, compact)
        assert verify_webhook_signature(compact, signature, [WEBHOOK_SECRET])
        assert not verify_webhook_signature(spaced, signature, [WEBHOOK_SECRET])

    def test_any_configured_secret_verifies(self) -> None:
        body = b'{"event":"order.paid"}'
        old = webhook_signature("old-secret", body)
        new = webhook_signature("new-secret", body)
        assert verify_webhook_signature(body, old, ["old-secret", "new-secret"])
        assert verify_webhook_signature(body, new, ["old-secret", "new-secret"])
        assert not verify_webhook_signature(body, old, ["new-secret"])
        assert not verify_webhook_signature(body, old, [])

    def test_non_ascii_signature_header_is_refused_not_an_error(self) -> None:
        assert not verify_webhook_signature(b"{}", "sïgnature", [WEBHOOK_SECRET])


class TestPaymentSignature:
    @settings(max_examples=150, deadline=None)
    @given(order_id=ids, payment_id=ids, secret=secrets_, other=secrets_)
    def test_agrees_with_sdk(self, order_id: str, payment_id: str, secret: str, other: str) -> None:
        ours = payment_signature(secret, order_id=order_id, payment_id=payment_id)
        swapped = payment_signature(secret, order_id=payment_id, payment_id=order_id)
        wrong = payment_signature(other, order_id=order_id, payment_id=payment_id)
        for signature in (ours, swapped, wrong, ours.upper()):
            expected = sdk_verifies_payment(order_id, payment_id, signature, secret)
            assert (
                verify_payment_signature(
                    secret, order_id=order_id, payment_id=payment_id, signature=signature
                )
                is expected
            )
        assert sdk_verifies_payment(order_id, payment_id, ours, secret) is True

    def test_matches_the_documented_construction(self) -> None:
        expected = hmac.new(
            KEY_SECRET.encode(), b"order_DBJOWzybf0sJbb|pay_DBJOWzybf0sJbc", hashlib.sha256
        ).hexdigest()
        assert (
            payment_signature(
                KEY_SECRET, order_id="order_DBJOWzybf0sJbb", payment_id="pay_DBJOWzybf0sJbc"
            )
            == expected
        )

    @pytest.mark.parametrize("signature", ["", "0" * 64, "not-hex"])
    def test_wrong_signatures_are_refused(self, signature: str) -> None:
        assert not verify_payment_signature(
            KEY_SECRET, order_id="order_A", payment_id="pay_B", signature=signature
        )
