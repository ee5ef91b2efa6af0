"""Access log lines, JSON logs in production, and readiness failures."""

import json
from collections.abc import AsyncIterator

import httpx
import pytest
import structlog
from fastapi import FastAPI

from outreach.config import Settings
from outreach.kit.db import Database
from outreach.kit.logging import configure_logging
from outreach.kit.storage import Storage
from tests.conftest import make_client, sign_in


async def _started(settings: Settings, database: Database) -> AsyncIterator[FastAPI]:
    from outreach.app import create_app

    app = create_app(settings, database=database)
    async with app.router.lifespan_context(app):
        yield app


async def test_json_access_line_carries_request_and_user(
    settings: Settings, database: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    json_settings = settings.model_copy(update={"log_json": True})
    try:
        async for app in _started(json_settings, database):
            async with make_client(app) as client:
                await sign_in(client, "ada@example.com")
                capsys.readouterr()
                await client.get("/v1/auth/me", headers={"X-Request-ID": "trace-me-1"})
        lines = [
            json.loads(line)
            for line in capsys.readouterr().err.splitlines()
            if line.startswith("{")
        ]
        access = [line for line in lines if line.get("event") == "request"]
        assert access, lines
        line = access[-1]
        assert line["request_id"] == "trace-me-1"
        assert line["method"] == "GET"
        assert line["path"] == "/v1/auth/me"
        assert line["status"] == 200
        assert isinstance(line["duration_ms"], float)
        assert line["user_id"]
    finally:
        configure_logging(settings)
        structlog.contextvars.clear_contextvars()


def test_secrets_are_redacted(capsys: pytest.CaptureFixture[str], settings: Settings) -> None:
    configure_logging(settings.model_copy(update={"log_json": True}))
    try:
        structlog.get_logger("t").info("login", password="hunter2", token="abc", user="ada")
        line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
        assert line["password"] == "[redacted]"
        assert line["token"] == "[redacted]"
        assert line["user"] == "ada"
    finally:
        configure_logging(settings)


class BrokenStorage(Storage):
    async def put(self, key: str, data: bytes, *, content_type: str | None = None) -> None: ...
    async def get(self, key: str) -> bytes:
        return b""

    def open(self, key: str) -> AsyncIterator[bytes]:
        raise NotImplementedError

    async def delete(self, key: str) -> None: ...
    async def exists(self, key: str) -> bool:
        return False

    async def check(self) -> None:
        raise OSError("disk gone")


async def test_ready_is_503_when_a_component_fails(settings: Settings, database: Database) -> None:
    async for app in _started(settings, database):
        app.state.storage = BrokenStorage()
        async with make_client(app) as client:
            response = await client.get("/ready")
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "error"
        assert body["components"]["storage"]["status"] == "error"
        assert "disk gone" in body["components"]["storage"]["error"]
        assert body["components"]["database"]["status"] == "ok"


async def test_ready_checks_redis_when_configured(
    settings: Settings, database: Database, redis_url: str
) -> None:
    async for app in _started(settings.model_copy(update={"redis_url": redis_url}), database):
        async with make_client(app) as client:
            body = (await client.get("/ready")).json()
        assert body["components"]["redis"]["status"] == "ok"


async def test_ready_reports_unreachable_redis(settings: Settings, database: Database) -> None:
    unreachable = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    async for app in _started(unreachable, database):
        async with make_client(app) as client:
            response = await client.get("/ready")
        assert response.status_code == 503
        assert response.json()["components"]["redis"]["status"] == "error"


_ = httpx
