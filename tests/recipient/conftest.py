"""Fixtures of the recipient tests: the fake DNS server and an app resolving through it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from outreach.app import create_app
from outreach.config import Settings, use_settings
from outreach.kit.db import Database
from tests.conftest import make_client, sign_in
from tests.fakes.dns import FakeDNS, fake_dns, fake_dns_server  # noqa: F401


@pytest.fixture
def recipient_settings(settings: Settings, fake_dns: FakeDNS) -> Settings:  # noqa: F811
    return settings.model_copy(
        update={
            "dns_nameservers": [fake_dns.nameserver],
            "dns_timeout_seconds": 1.0,
            "recipient_import_batch_rows": 50,
            "max_body_bytes": 5 * 1024 * 1024,
        }
    )


async def started_app(
    settings: Settings, database: Database, **overrides: Any
) -> AsyncIterator[FastAPI]:
    app = create_app(settings.model_copy(update=overrides), database=database)
    try:
        async with app.router.lifespan_context(app):
            yield app
    finally:
        use_settings(settings)


@pytest.fixture
async def rapp(
    recipient_settings: Settings, database: Database, settings: Settings
) -> AsyncIterator[FastAPI]:
    async for app in started_app(recipient_settings, database):
        yield app
    use_settings(settings)


@pytest.fixture
async def rclient(rapp: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(rapp) as client:
        yield client


@pytest.fixture
async def ada(rclient: httpx.AsyncClient) -> dict[str, Any]:
    """A signed-in user (20 signup credits)."""
    return await sign_in(rclient, "ada@example.com")
