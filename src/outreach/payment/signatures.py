"""Razorpay's two HMAC-SHA256 signatures, compared in constant time.

* Checkout callback: ``hex(HMAC(key_secret, f"{order_id}|{payment_id}"))``.
* Webhook: ``hex(HMAC(webhook_secret, raw_body))`` over the exact bytes received,
  never over re-serialised JSON (key order and spacing would change the digest).

tests/payment/test_signatures.py checks both against the official SDK.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable


def hmac_sha256_hex(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _same(expected: str, given: str) -> bool:
    # Bytes, not str: compare_digest refuses non-ASCII str, and a header may hold anything.
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace"))


def payment_signature(key_secret: str, *, order_id: str, payment_id: str) -> str:
    return hmac_sha256_hex(key_secret, f"{order_id}|{payment_id}".encode())


def verify_payment_signature(
    key_secret: str, *, order_id: str, payment_id: str, signature: str
) -> bool:
    """Whether ``signature`` is the checkout callback's signature of this order and payment."""
    expected = payment_signature(key_secret, order_id=order_id, payment_id=payment_id)
    return _same(expected, signature)


def webhook_signature(secret: str, body: bytes) -> str:
    return hmac_sha256_hex(secret, body)


def verify_webhook_signature(body: bytes, signature: str, secrets: Iterable[str]) -> bool:
    """Whether ``signature`` signs ``body`` with any of ``secrets`` (several during a rotation).

    Every secret is tried, so the time taken does not tell which one matched.
    """
    matched = False
    for secret in secrets:
        matched |= _same(webhook_signature(secret, body), signature)
    return matched
