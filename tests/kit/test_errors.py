"""Every error is problem+json with a stable code; nothing leaks a stack trace."""

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel, Field

from outreach.config import Settings
from outreach.kit.db import Database
from outreach.kit.errors import PaymentRequired
from outreach.kit.idempotency import IdempotentRoute
from tests.conftest import make_client

router = APIRouter(route_class=IdempotentRoute)


class Echo(BaseModel):
    name: str = Field(max_length=10)
    count: int


@router.post("/test/echo")
async def echo(body: Echo) -> Echo:
    return body


@router.get("/test/boom")
async def boom() -> None:
    raise RuntimeError("secret internals: password=hunter2")


@router.get("/test/broke")
async def broke() -> None:
    raise PaymentRequired("you need 3 more credits", required=5, available=2)


@pytest.fixture
async def client(settings: Settings, database: Database) -> AsyncIterator[httpx.AsyncClient]:
    from outreach.app import create_app

    app: FastAPI = create_app(settings, database=database)
    app.include_router(router)
    async with app.router.lifespan_context(app), make_client(app) as client:
        yield client


def assert_problem(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["request_id"] == response.headers["x-request-id"]
    return body


async def test_unknown_route_is_404_problem(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/nope"), 404, "not_found")


async def test_wrong_method_is_405_problem(client: httpx.AsyncClient) -> None:
    assert_problem(await client.delete("/health"), 405, "method_not_allowed")


async def test_validation_errors_name_each_field(client: httpx.AsyncClient) -> None:
    body = assert_problem(
        await client.post("/test/echo", json={"name": "x" * 11}), 422, "validation_error"
    )
    locs = {tuple(error["loc"]) for error in body["errors"]}
    assert ("body", "name") in locs
    assert ("body", "count") in locs


async def test_malformed_json_is_422_problem(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/test/echo", content=b'{"name": ', headers={"content-type": "application/json"}
    )
    assert_problem(response, 422, "malformed_json")


async def test_wrong_content_type_is_4xx_problem(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/test/echo", content=b"name=x", headers={"content-type": "text/plain"}
    )
    assert 400 <= response.status_code < 500
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_oversized_body_is_413(client: httpx.AsyncClient, settings: Settings) -> None:
    big = b'{"name": "' + b"x" * (settings.max_body_bytes + 10) + b'", "count": 1}'
    response = await client.post(
        "/test/echo", content=big, headers={"content-type": "application/json"}
    )
    assert_problem(response, 413, "payload_too_large")


async def test_oversized_chunked_body_is_413(client: httpx.AsyncClient, settings: Settings) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"name": "'
        for _ in range(settings.max_body_bytes // 65536 + 2):
            yield b"x" * 65536
        yield b'", "count": 1}'

    response = await client.post(
        "/test/echo", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_problem(response, 413, "payload_too_large")


async def test_unhandled_error_is_500_without_internals(client: httpx.AsyncClient) -> None:
    response = await client.get("/test/boom")
    body = assert_problem(response, 500, "internal_error")
    assert "hunter2" not in response.text
    assert "Traceback" not in response.text
    assert body["request_id"]


async def test_app_error_carries_extra_members(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get("/test/broke"), 402, "payment_required")
    assert body["required"] == 5
    assert body["available"] == 2
    assert body["detail"] == "you need 3 more credits"


class TestRequestId:
    async def test_sane_request_id_is_echoed(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/health", headers={"X-Request-ID": "abc-123_x.y"})
        assert response.headers["x-request-id"] == "abc-123_x.y"

    @pytest.mark.parametrize("bad", ["a b", "x" * 129, "<script>", "é"])
    async def test_insane_request_id_is_replaced(self, client: httpx.AsyncClient, bad: str) -> None:
        response = await client.get("/health", headers={"X-Request-ID": bad.encode("utf-8")})
        assert response.status_code == 200
        assert response.headers["x-request-id"] != bad
        assert len(response.headers["x-request-id"]) == 32


async def test_cors_allows_only_configured_origins(client: httpx.AsyncClient) -> None:
    allowed = await client.options(
        "/health",
        headers={"Origin": "http://testserver", "Access-Control-Request-Method": "GET"},
    )
    assert allowed.headers["access-control-allow-origin"] == "http://testserver"
    assert allowed.headers["access-control-allow-credentials"] == "true"
    denied = await client.get("/health", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in denied.headers


async def test_openapi_declares_problem_schema(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    assert "Problem" in schema["components"]["schemas"]
