"""The OpenAPI document declares what the shared machinery answers, on every operation."""

import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

import pytest
from fastapi import APIRouter, Depends, FastAPI
from pydantic import BaseModel

from outreach.auth.dependencies import AdminUser, CurrentUser
from outreach.config import Settings
from outreach.kit.db import Database, SessionDep
from outreach.kit.idempotency import IdempotentRoute
from outreach.kit.openapi import declares_problems
from outreach.kit.pagination import PaginationDep
from tests.conftest import make_client

router = APIRouter(prefix="/test/doc", route_class=IdempotentRoute)


@declares_problems(429)
@declares_problems(409, methods=["POST"])
async def rationed() -> None:
    return None


class Note(BaseModel):
    text: str


@router.get("/public")
async def public() -> str:
    return "hello"


@router.get("/mine")
async def mine(user: CurrentUser, pagination: PaginationDep) -> list[str]:
    return []


@router.post("/mine")
async def add_mine(user: CurrentUser, body: Note) -> str:
    return body.text


@router.get("/admin/{item_id}")
async def admin_item(item_id: uuid.UUID, admin: AdminUser, session: SessionDep) -> str:
    return str(item_id)


@router.get("/rationed")
async def rationed_get(_: Annotated[None, Depends(rationed)]) -> str:
    return "read"


@router.post("/rationed")
async def rationed_post(_: Annotated[None, Depends(rationed)]) -> str:
    return "written"


@pytest.fixture
async def document(settings: Settings, database: Database) -> AsyncIterator[dict[str, Any]]:
    from outreach.app import create_app

    app: FastAPI = create_app(settings, database=database)
    app.include_router(router)
    async with app.router.lifespan_context(app), make_client(app) as client:
        yield (await client.get("/openapi.json")).json()


def statuses(document: dict[str, Any], method: str, path: str) -> set[str]:
    return set(document["paths"][path][method]["responses"])


def test_dependencies_declare_their_problems(document: dict[str, Any]) -> None:
    assert statuses(document, "get", "/test/doc/public") == {"200"}
    # Session 401 and 503 (database), cursor 400, the limit/cursor query's 422.
    assert statuses(document, "get", "/test/doc/mine") == {"200", "400", "401", "422", "503"}
    # CSRF 403 on an unsafe method; an unreadable or oversized body 400 / 413.
    post = {"200", "400", "401", "403", "413", "422", "503"}
    assert statuses(document, "post", "/test/doc/mine") == post
    # The admin guard's 403; a malformed id names no resource: 404.
    assert {"401", "403", "404", "503"} <= statuses(document, "get", "/test/doc/admin/{item_id}")
    assert statuses(document, "get", "/test/doc/rationed") == {"200", "429"}
    assert statuses(document, "post", "/test/doc/rationed") == {"200", "409", "429"}


def test_every_error_response_is_a_problem(document: dict[str, Any]) -> None:
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if status.startswith("4") or (status.startswith("5") and path != "/ready"):
                    assert response["content"] == problem, (method, path, status)
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_shared_machinery_is_declared_on_the_real_operations(document: dict[str, Any]) -> None:
    assert "400" in statuses(document, "get", "/v1/campaigns")  # a pagination cursor
    assert "503" in statuses(document, "get", "/v1/payments/packs")  # payments_disabled
    assert "403" in statuses(document, "get", "/v1/admin/users")  # administrators only
    schedule = document["paths"]["/v1/campaigns/{campaign_id}/schedule"]["post"]
    (header,) = [p for p in schedule["parameters"] if p["name"] == "Idempotency-Key"]
    assert header["required"] is True
    callback = document["paths"]["/v1/gmail/callback"]["get"]["responses"]["303"]
    assert "content" not in callback  # a redirect has no body
