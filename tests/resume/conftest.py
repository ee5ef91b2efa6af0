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
from tests.conftest import make_client, sign_in
from tests.fakes.openai import FAKE_API_KEY, FAKE_MODEL, FakeOpenAI

DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


async def upload(
    client: httpx.AsyncClient,
    data: bytes,
    name: str = "resume.pdf",
    content_type: str = "application/pdf",
) -> httpx.Response:
    return await client.post("/v1/resume/upload", files={"file": (name, data, content_type)})


async def uploaded(
    client: httpx.AsyncClient, data: bytes, name: str = "resume.pdf"
) -> dict[str, Any]:
    response = await upload(client, data, name)
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture
async def started_app(settings: Settings, database: Database) -> AsyncIterator[Any]:
    """Build and start an app with changed settings; the test settings come back after."""
    apps: list[Any] = []

    async def start(**changes: Any) -> FastAPI:
        app = create_app(settings.model_copy(update=changes), database=database)
        context = app.router.lifespan_context(app)
        await context.__aenter__()
        apps.append(context)
        return app

    yield start
    for context in reversed(apps):
        await context.__aexit__(None, None, None)
    use_settings(settings)


@pytest.fixture
async def llm_client(
    started_app: Any,
    fake_openai: FakeOpenAI,  # noqa: F811 - the fixture imported above
) -> AsyncIterator[httpx.AsyncClient]:
    app = await started_app(
        llm_base_url=fake_openai.base_url, llm_model=FAKE_MODEL, llm_api_key=SecretStr(FAKE_API_KEY)
    )
    async with make_client(app) as client:
        await sign_in(client, "llm-user@example.in", "Arjun Nair")
        yield client


@pytest.fixture
async def user_client(client: httpx.AsyncClient) -> httpx.AsyncClient:
    await sign_in(client, "priya@example.in", "Priya Venkataraman")
    return client
