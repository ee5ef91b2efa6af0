"""Razorpay's REST API over httpx: create an order, list an order's payments.

HTTP basic auth with the key id and secret, timeouts on every call, retries
with backoff on 5xx and network errors. One ``httpx.AsyncClient`` per key and
base URL, held by :data:`razorpay_clients` (closed with ``aclose()``).
"""

from __future__ import annotations

import asyncio
import random
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from outreach.config import Settings
from outreach.kit.errors import AppError, ServiceUnavailable
from outreach.kit.logging import get_logger

log = get_logger("outreach.payment.gateway")
M = TypeVar("M", bound=BaseModel)


class PaymentsDisabled(ServiceUnavailable):
    code, title = "payments_disabled", "Payments are not configured"


class RazorpayUnavailable(ServiceUnavailable):
    code, title = "razorpay_unavailable", "Razorpay did not answer"


class RazorpayRejected(AppError):
    status, code, title = 502, "razorpay_error", "Razorpay refused the request"


def _notes(value: object) -> object:
    # Razorpay sends empty notes as [] rather than {}.
    return {} if value in (None, []) else value


class RazorpayOrder(BaseModel):
    """The part of Razorpay's order entity we use."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1, max_length=64)
    amount: int
    amount_paid: int = 0
    currency: str
    receipt: str | None = None
    status: str
    notes: dict[str, Any] = Field(default_factory=dict)

    _empty_notes = field_validator("notes", mode="before")(_notes)


class RazorpayPayment(BaseModel):
    """The part of Razorpay's payment entity we use."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1, max_length=64)
    order_id: str | None = None
    amount: int
    currency: str
    status: str  # created | authorized | captured | refunded | failed
    notes: dict[str, Any] = Field(default_factory=dict)
    error_code: str | None = None
    error_description: str | None = None

    _empty_notes = field_validator("notes", mode="before")(_notes)


class RazorpayRefund(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str = Field(min_length=1, max_length=64)
    payment_id: str
    amount: int
    currency: str
    status: str


class RazorpayClient:
    def __init__(self, http: httpx.AsyncClient, *, max_attempts: int, retry_base: float) -> None:
        self.http = http
        self.max_attempts = max(1, max_attempts)
        self.retry_base = retry_base

    async def create_order(
        self, *, amount: int, currency: str, receipt: str, notes: dict[str, str]
    ) -> RazorpayOrder:
        """``POST /v1/orders``."""
        body = {"amount": amount, "currency": currency, "receipt": receipt, "notes": notes}
        data = await self._request("POST", "/v1/orders", json=body)
        return self._parse(RazorpayOrder, data)

    async def order_payments(self, razorpay_order_id: str) -> list[RazorpayPayment]:
        """``GET /v1/orders/{id}/payments``: every payment attempted on the order."""
        data = await self._request("GET", f"/v1/orders/{razorpay_order_id}/payments")
        items = data.get("items")
        if not isinstance(items, list):
            raise RazorpayRejected("Razorpay answered the payments lookup without items")
        return [self._parse(RazorpayPayment, item) for item in items]

    @staticmethod
    def _parse(model: type[M], data: object) -> M:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            raise RazorpayRejected(
                f"Razorpay answered with an unexpected {model.__name__}"
            ) from exc

    async def _request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        for attempt in range(1, self.max_attempts + 1):
            try:
                response = await self.http.request(method, path, **kwargs)
            except httpx.HTTPError as exc:
                failure = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code < 500:
                    return self._read(response)
                failure = f"HTTP {response.status_code}"
            log.warning("razorpay call failed", path=path, attempt=attempt, error=failure)
            if attempt < self.max_attempts:
                await asyncio.sleep(
                    self.retry_base * 2 ** (attempt - 1) * (1 + random.random() / 4)
                )
        raise RazorpayUnavailable(
            f"Razorpay did not answer after {self.max_attempts} attempts ({failure}); try again",
            headers={"Retry-After": "30"},
        )

    @staticmethod
    def _read(response: httpx.Response) -> dict[str, Any]:
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.is_success and isinstance(data, dict):
            return data
        description = None
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            description = data["error"].get("description")
        raise RazorpayRejected(
            f"Razorpay answered {response.status_code}: {description or 'no description'}",
            razorpay_status=response.status_code,
        )


class RazorpayClients:
    """The process's Razorpay client, rebuilt when the keys or base URL change."""

    def __init__(self) -> None:
        self._client: RazorpayClient | None = None
        self._config: tuple[object, ...] | None = None

    def get(self, settings: Settings) -> RazorpayClient:
        if not settings.payments_enabled:
            raise PaymentsDisabled("set OUTREACH_RAZORPAY_KEY_ID and OUTREACH_RAZORPAY_KEY_SECRET")
        assert settings.razorpay_key_id is not None
        assert settings.razorpay_key_secret is not None
        config = (
            settings.razorpay_api_url,
            settings.razorpay_key_id,
            settings.razorpay_key_secret.get_secret_value(),
            settings.razorpay_timeout_seconds,
            settings.razorpay_max_attempts,
            settings.razorpay_retry_base_seconds,
        )
        if self._client is None or config != self._config:
            # The replaced client is left to the garbage collector: a call may still use it.
            http = httpx.AsyncClient(
                base_url=settings.razorpay_api_url,
                auth=(settings.razorpay_key_id, settings.razorpay_key_secret.get_secret_value()),
                timeout=httpx.Timeout(settings.razorpay_timeout_seconds, connect=5.0),
                headers={"User-Agent": "outreach/0.1"},
            )
            self._client = RazorpayClient(
                http,
                max_attempts=settings.razorpay_max_attempts,
                retry_base=settings.razorpay_retry_base_seconds,
            )
            self._config = config
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.http.aclose()
        self._client = None
        self._config = None


razorpay_clients = RazorpayClients()
