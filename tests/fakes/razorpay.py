"""A fake Razorpay for tests: the REST API we call, and what Checkout and webhooks send.

Served on 127.0.0.1 by ``FakeServer``; point ``razorpay_api_url`` at ``fake.url``.
It speaks Razorpay's protocol as documented (and as the official SDK calls it):

* ``POST /v1/orders`` (HTTP basic auth with the key id and secret; JSON body with
  ``amount`` in paise >= 100, ``currency``, ``receipt`` <= 40 chars, ``notes`` of
  at most 15 string values <= 256 chars) → the order entity;
* ``GET /v1/orders/{id}`` → the order; ``GET /v1/orders/{id}/payments`` → a
  collection of payment entities; ``GET /v1/payments/{id}`` → one payment;
* errors as ``{"error": {"code": "BAD_REQUEST_ERROR", "description": …}}``.

The test plays the customer and Razorpay's side: ``pay()`` makes a payment on an
order (``captured`` by default), ``checkout_response()`` is what Checkout hands
to the page's handler, ``webhook()`` builds a signed event exactly as Razorpay
delivers it (body bytes and headers), ``refund()`` refunds a payment.

Failure injection: ``fail_next`` holds HTTP statuses the next API calls answer
with (``[500, 503]`` → two failures, then normal service).

The app runs in the server's thread; its state is plain data behind a lock.

PYTEST_DONT_REWRITE
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import string
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.server import FakeServer

KEY_ID = "rzp_test_FakeKeyId00001"
KEY_SECRET = "fake_key_secret_0123456789abcdef"
WEBHOOK_SECRET = "fake_webhook_secret_0123456789"
ACCOUNT_ID = "acc_FakeAccount0001"

_ALNUM = string.ascii_letters + string.digits


def razorpay_id(prefix: str) -> str:
    """An id shaped like Razorpay's: a prefix and 14 base62 characters."""
    return f"{prefix}_{''.join(secrets.choice(_ALNUM) for _ in range(14))}"


def _hmac_hex(secret: str, message: bytes) -> str:
    # Computed here rather than with outreach's helpers: the fake is Razorpay's side.
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _error(status: int, description: str, field: str | None = None) -> JSONResponse:
    code = "BAD_REQUEST_ERROR" if status < 500 else "SERVER_ERROR"
    error = {
        "code": code,
        "description": description,
        "source": "business" if status < 500 else "internal",
        "step": "payment_initiation",
        "reason": "input_validation_failed" if status < 500 else "server_error",
        "metadata": {},
        "field": field,
    }
    return JSONResponse({"error": error}, status_code=status)


@dataclass
class SignedWebhook:
    """A webhook as Razorpay delivers it: the exact body bytes and the headers."""

    body: bytes
    headers: dict[str, str]
    event_id: str

    def tampered(self) -> bytes:
        """The body with one byte changed (the signature no longer fits)."""
        index = self.body.index(b'"amount":') + len(b'"amount":')
        digit = self.body[index : index + 1]
        replacement = b"8" if digit != b"8" else b"7"
        return self.body[:index] + replacement + self.body[index + 1 :]


class FakeRazorpay:
    def __init__(self) -> None:
        self.app = Starlette(
            routes=[
                Route("/v1/orders", self._create_order, methods=["POST"]),
                Route("/v1/orders/{order_id}", self._get_order, methods=["GET"]),
                Route("/v1/orders/{order_id}/payments", self._order_payments, methods=["GET"]),
                Route("/v1/payments/{payment_id}", self._get_payment, methods=["GET"]),
            ]
        )
        self.server = FakeServer(self.app)
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.orders: dict[str, dict[str, Any]] = {}
            self.payments: dict[str, dict[str, Any]] = {}
            self.fail_next: list[int] = []
            self.requests: list[tuple[str, str]] = []

    # -- the server ---------------------------------------------------------------

    @property
    def url(self) -> str:
        return self.server.url

    def settings_update(self) -> dict[str, Any]:
        """``Settings`` changes enabling payments against this fake (test-mode keys)."""
        return {
            "razorpay_key_id": KEY_ID,
            "razorpay_key_secret": SecretStr(KEY_SECRET),
            "razorpay_webhook_secrets": [SecretStr(WEBHOOK_SECRET)],
            "razorpay_api_url": self.url,
            "razorpay_retry_base_seconds": 0.0,
        }

    def __enter__(self) -> Self:
        self.server.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.server.stop()

    def _authenticate(self, request: Request) -> Response | None:
        self.requests.append((request.method, request.url.path))
        if self.fail_next:
            return _error(
                self.fail_next.pop(0), "We are facing some trouble completing your request"
            )
        header = request.headers.get("authorization", "")
        expected = base64.b64encode(f"{KEY_ID}:{KEY_SECRET}".encode()).decode()
        if header != f"Basic {expected}":
            return _error(401, "Authentication failed")
        return None

    async def _create_order(self, request: Request) -> Response:
        with self._lock:
            if (refused := self._authenticate(request)) is not None:
                return refused
        try:
            body = json.loads(await request.body())
        except ValueError:
            return _error(400, "The request body is not valid JSON")
        problem = self._order_problem(body)
        if problem is not None:
            return _error(400, *problem)
        notes = body.get("notes") or []
        order = {
            "id": razorpay_id("order"),
            "entity": "order",
            "amount": body["amount"],
            "amount_paid": 0,
            "amount_due": body["amount"],
            "currency": body["currency"],
            "receipt": body.get("receipt"),
            "offer_id": None,
            "status": "created",
            "attempts": 0,
            "notes": notes,
            "created_at": int(time.time()),
        }
        with self._lock:
            self.orders[order["id"]] = order
        return JSONResponse(order)

    @staticmethod
    def _order_problem(body: Any) -> tuple[str, str] | None:
        if not isinstance(body, dict):
            return "The request body must be an object", "body"
        amount = body.get("amount")
        if not isinstance(amount, int) or isinstance(amount, bool) or amount < 100:
            return "The amount must be atleast INR 1.00", "amount"
        if body.get("currency") not in {"INR", "USD", "EUR"}:
            return "The currency is invalid", "currency"
        receipt = body.get("receipt")
        if receipt is not None and (not isinstance(receipt, str) or len(receipt) > 40):
            return "The receipt may not be greater than 40 characters", "receipt"
        notes = body.get("notes", {})
        if not isinstance(notes, dict | list) or len(notes) > 15:
            return "Number of notes fields cannot exceed 15", "notes"
        if isinstance(notes, dict) and any(
            not isinstance(v, str | int) or len(str(v)) > 256 for v in notes.values()
        ):
            return "notes values must be strings of at most 256 characters", "notes"
        return None

    async def _get_order(self, request: Request) -> Response:
        with self._lock:
            if (refused := self._authenticate(request)) is not None:
                return refused
            order = self.orders.get(request.path_params["order_id"])
            if order is None:
                return _error(400, "The id provided does not exist", "id")
            return JSONResponse(order)

    async def _order_payments(self, request: Request) -> Response:
        with self._lock:
            if (refused := self._authenticate(request)) is not None:
                return refused
            order_id = request.path_params["order_id"]
            if order_id not in self.orders:
                return _error(400, "The id provided does not exist", "id")
            items = [p for p in self.payments.values() if p["order_id"] == order_id]
            return JSONResponse({"entity": "collection", "count": len(items), "items": items})

    async def _get_payment(self, request: Request) -> Response:
        with self._lock:
            if (refused := self._authenticate(request)) is not None:
                return refused
            payment = self.payments.get(request.path_params["payment_id"])
            if payment is None:
                return _error(400, "The id provided does not exist", "id")
            return JSONResponse(payment)

    # -- the customer and Razorpay's side -------------------------------------------

    def pay(
        self,
        order_id: str,
        *,
        status: str = "captured",
        amount: int | None = None,
        currency: str | None = None,
        notes: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """A payment on the order, as the customer completes Checkout."""
        with self._lock:
            order = self.orders[order_id]
            payment = {
                "id": razorpay_id("pay"),
                "entity": "payment",
                "amount": order["amount"] if amount is None else amount,
                "currency": currency or order["currency"],
                "status": status,
                "order_id": order_id,
                "invoice_id": None,
                "international": False,
                "method": "upi",
                "amount_refunded": 0,
                "refund_status": None,
                "captured": status == "captured",
                "description": "Credits",
                "card_id": None,
                "bank": None,
                "wallet": None,
                "vpa": "success@razorpay",
                "email": "buyer@example.com",
                "contact": "+919900000000",
                "notes": notes if notes is not None else [],
                "fee": 0 if status != "captured" else 472,
                "tax": 0 if status != "captured" else 72,
                "error_code": "BAD_REQUEST_ERROR" if status == "failed" else None,
                "error_description": "Payment was declined by the bank"
                if status == "failed"
                else None,
                "error_source": None,
                "error_step": None,
                "error_reason": "payment_declined" if status == "failed" else None,
                "acquirer_data": {"rrn": "123456789012"},
                "created_at": int(time.time()),
            }
            self.payments[payment["id"]] = payment
            order["attempts"] += 1
            if status == "captured":
                order["status"] = "paid"
                order["amount_paid"] = payment["amount"]
                order["amount_due"] = 0
            elif order["status"] == "created":
                order["status"] = "attempted"
            return dict(payment)

    def refund(self, payment_id: str, amount: int | None = None) -> dict[str, Any]:
        with self._lock:
            payment = self.payments[payment_id]
            amount = payment["amount"] - payment["amount_refunded"] if amount is None else amount
            payment["amount_refunded"] += amount
            full = payment["amount_refunded"] >= payment["amount"]
            payment["status"] = "refunded" if full else payment["status"]
            payment["refund_status"] = "full" if full else "partial"
            return {
                "id": razorpay_id("rfnd"),
                "entity": "refund",
                "amount": amount,
                "currency": payment["currency"],
                "payment_id": payment_id,
                "notes": [],
                "receipt": None,
                "acquirer_data": {"arn": None},
                "created_at": int(time.time()),
                "batch_id": None,
                "status": "processed",
                "speed_processed": "normal",
                "speed_requested": "normal",
            }

    @staticmethod
    def checkout_response(order_id: str, payment_id: str) -> dict[str, str]:
        """What Razorpay Checkout passes to the page's ``handler`` after a payment."""
        return {
            "razorpay_payment_id": payment_id,
            "razorpay_order_id": order_id,
            "razorpay_signature": _hmac_hex(KEY_SECRET, f"{order_id}|{payment_id}".encode()),
        }

    def webhook(
        self,
        event: str,
        *,
        payment: dict[str, Any] | None = None,
        order: dict[str, Any] | None = None,
        refund: dict[str, Any] | None = None,
        secret: str = WEBHOOK_SECRET,
        event_id: str | None = None,
    ) -> SignedWebhook:
        """A signed event as Razorpay posts it, compact JSON as it sends."""
        entities = {"payment": payment, "order": order, "refund": refund}
        payload = {name: {"entity": e} for name, e in entities.items() if e is not None}
        body = json.dumps(
            {
                "entity": "event",
                "account_id": ACCOUNT_ID,
                "event": event,
                "contains": list(payload),
                "payload": payload,
                "created_at": int(time.time()),
            },
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode()
        event_id = event_id or razorpay_id("evt")
        headers = {
            "Content-Type": "application/json",
            "X-Razorpay-Signature": _hmac_hex(secret, body),
            "X-Razorpay-Event-Id": event_id,
            "User-Agent": "Razorpay-Webhook/v1",
        }
        return SignedWebhook(body=body, headers=headers, event_id=event_id)

    def order(self, order_id: str) -> dict[str, Any]:
        with self._lock:
            return dict(self.orders[order_id])
