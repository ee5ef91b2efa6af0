"""Payments fixtures: the fake Razorpay, settings with test keys, an app and clients."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from outreach.app import create_app
from outreach.config import Settings, use_settings
from outreach.kit.db import Database
from outreach.payment.gateway import razorpay_clients
from tests.conftest import make_client, sign_in
from tests.fakes.razorpay import KEY_ID, KEY_SECRET, WEBHOOK_SECRET, FakeRazorpay, SignedWebhook

OLD_WEBHOOK_SECRET = "old_webhook_secret_before_rotation"


@pytest.fixture(scope="session")
async def fake_razorpay_server() -> AsyncIterator[FakeRazorpay]:
    """One fake Razorpay per test session (per xdist worker); use ``fake_razorpay``."""
    with FakeRazorpay() as fake:
        yield fake
    await razorpay_clients.aclose()


@pytest.fixture
def fake_razorpay(fake_razorpay_server: FakeRazorpay) -> FakeRazorpay:
    fake_razorpay_server.reset()
    return fake_razorpay_server


def with_razorpay(settings: Settings, fake: FakeRazorpay, **changes: Any) -> Settings:
    """Test-mode keys pointing at the fake; two webhook secrets, as during a rotation."""
    update: dict[str, Any] = {
        "razorpay_key_id": KEY_ID,
        "razorpay_key_secret": SecretStr(KEY_SECRET),
        "razorpay_webhook_secrets": [SecretStr(OLD_WEBHOOK_SECRET), SecretStr(WEBHOOK_SECRET)],
        "razorpay_api_url": fake.url,
        "razorpay_retry_base_seconds": 0.0,
        **changes,
    }
    return settings.model_copy(update=update)


@pytest.fixture
def payment_settings(settings: Settings, fake_razorpay: FakeRazorpay) -> Settings:
    return with_razorpay(settings, fake_razorpay)


async def started_app(
    settings: Settings, database: Database, restore: Settings
) -> AsyncIterator[FastAPI]:
    app = create_app(settings, database=database)
    try:
        async with app.router.lifespan_context(app):
            yield app
    finally:
        use_settings(restore)  # create_app made these the process's settings


@pytest.fixture
async def payment_app(
    payment_settings: Settings, database: Database, settings: Settings
) -> AsyncIterator[FastAPI]:
    async for app in started_app(payment_settings, database, settings):
        yield app


@pytest.fixture
async def buyer(payment_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A signed-in user's browser."""
    async with make_client(payment_app) as client:
        await sign_in(client, "buyer@example.com", "Priya Buyer")
        yield client


@pytest.fixture
async def razorpay_side(payment_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Razorpay's webhook sender: no session, no CSRF token."""
    async with make_client(payment_app) as client:
        yield client


_keys = iter(range(1_000_000))


async def create_order(client: httpx.AsyncClient, pack_id: str = "pack_100") -> dict[str, Any]:
    response = await client.post(
        "/v1/payments/orders",
        json={"pack_id": pack_id},
        headers={"Idempotency-Key": f"order-{next(_keys)}"},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def deliver(client: httpx.AsyncClient, webhook: SignedWebhook) -> httpx.Response:
    return await client.post("/v1/payments/webhook", content=webhook.body, headers=webhook.headers)


async def balance(client: httpx.AsyncClient) -> int:
    response = await client.get("/v1/credits/balance")
    assert response.status_code == 200, response.text
    value: int = response.json()["balance"]
    return value
