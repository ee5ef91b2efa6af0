"""Idempotency-Key with Stripe's semantics, on SQLite and PostgreSQL."""

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Annotated

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Header
from pydantic import BaseModel
from sqlalchemy import func, select

from outreach.config import Settings
from outreach.kit.clock import Clock
from outreach.kit.db import Database, SessionDep
from outreach.kit.idempotency import IdempotentRoute, delete_expired_keys, idempotency_dependency
from outreach.models import AuditLog, IdempotencyKey
from tests.conftest import make_client


async def caller(x_test_caller: Annotated[str, Header()] = "anonymous") -> str:
    return x_test_caller


router = APIRouter(route_class=IdempotentRoute)
Required = idempotency_dependency(required=True, caller=caller)
Optional = idempotency_dependency(required=False, caller=caller)


class Charge(BaseModel):
    amount: int
    slow: bool = False


class ChargeOut(BaseModel):
    id: uuid.UUID
    amount: int


async def _charge(session: SessionDep, body: Charge) -> ChargeOut:
    entry = AuditLog(action="test.charge", actor_id=None, details={"amount": body.amount})
    session.add(entry)
    await session.flush()
    if body.slow:
        await asyncio.sleep(0.5)
    return ChargeOut(id=entry.id, amount=body.amount)


@router.post("/test/charges", status_code=201, dependencies=[Required])
async def create_charge(session: SessionDep, body: Charge) -> ChargeOut:
    return await _charge(session, body)


@router.post("/test/optional", status_code=201, dependencies=[Optional])
async def optional_charge(session: SessionDep, body: Charge) -> ChargeOut:
    return await _charge(session, body)


def _app(settings: Settings, database: Database) -> FastAPI:
    from outreach.app import create_app

    app = create_app(settings, database=database)
    app.include_router(router)
    return app


@pytest.fixture
async def client(settings: Settings, database: Database) -> AsyncIterator[httpx.AsyncClient]:
    app = _app(settings, database)
    async with app.router.lifespan_context(app), make_client(app) as client:
        yield client


async def count_charges(database: Database) -> int:
    async with database.sessionmaker() as session:
        return int(
            await session.scalar(
                select(func.count()).select_from(AuditLog).where(AuditLog.action == "test.charge")
            )
            or 0
        )


class TestReplay:
    async def test_same_key_same_body_replays_first_response(
        self, client: httpx.AsyncClient, database: Database
    ) -> None:
        headers = {"Idempotency-Key": "k1"}
        first = await client.post("/test/charges", json={"amount": 5}, headers=headers)
        second = await client.post("/test/charges", json={"amount": 5}, headers=headers)
        assert first.status_code == second.status_code == 201, first.text
        assert second.json() == first.json()
        assert second.headers["idempotent-replayed"] == "true"
        assert "idempotent-replayed" not in first.headers
        assert await count_charges(database) == 1

    async def test_same_key_other_body_is_422(self, client: httpx.AsyncClient) -> None:
        headers = {"Idempotency-Key": "k2"}
        await client.post("/test/charges", json={"amount": 5}, headers=headers)
        response = await client.post("/test/charges", json={"amount": 6}, headers=headers)
        assert response.status_code == 422
        assert response.json()["code"] == "idempotency_key_reused"

    async def test_keys_are_scoped_per_caller(
        self, client: httpx.AsyncClient, database: Database
    ) -> None:
        for caller_name in ("alice", "bob"):
            response = await client.post(
                "/test/charges",
                json={"amount": 1},
                headers={"Idempotency-Key": "shared", "X-Test-Caller": caller_name},
            )
            assert response.status_code == 201
            assert "idempotent-replayed" not in response.headers
        assert await count_charges(database) == 2

    async def test_failed_validation_stores_nothing(
        self, client: httpx.AsyncClient, database: Database
    ) -> None:
        headers = {"Idempotency-Key": "k3"}
        bad = await client.post("/test/charges", json={"amount": "lots"}, headers=headers)
        assert bad.status_code == 422
        good = await client.post("/test/charges", json={"amount": 3}, headers=headers)
        assert good.status_code == 201
        assert "idempotent-replayed" not in good.headers

    async def test_expired_key_is_processed_again(
        self, client: httpx.AsyncClient, database: Database, frozen_clock: Clock
    ) -> None:
        headers = {"Idempotency-Key": "k4"}
        await client.post("/test/charges", json={"amount": 1}, headers=headers)
        frozen_clock.advance(timedelta(hours=25))
        again = await client.post("/test/charges", json={"amount": 1}, headers=headers)
        assert again.status_code == 201
        assert "idempotent-replayed" not in again.headers
        assert await count_charges(database) == 2

    async def test_cleanup_deletes_only_expired_keys(
        self, client: httpx.AsyncClient, database: Database, frozen_clock: Clock
    ) -> None:
        await client.post("/test/charges", json={"amount": 1}, headers={"Idempotency-Key": "old"})
        frozen_clock.advance(timedelta(hours=23))
        await client.post("/test/charges", json={"amount": 1}, headers={"Idempotency-Key": "new"})
        frozen_clock.advance(timedelta(hours=2))
        async with database.sessionmaker() as session:
            assert await delete_expired_keys(session) == 1
            keys = (await session.scalars(select(IdempotencyKey.key))).all()
        assert keys == ["new"]


class TestBadKeys:
    async def test_missing_required_key_is_400(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/test/charges", json={"amount": 1})
        assert response.status_code == 400
        assert response.json()["code"] == "idempotency_key_missing"

    async def test_oversized_key_is_400(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/test/charges", json={"amount": 1}, headers={"Idempotency-Key": "k" * 256}
        )
        assert response.status_code == 400
        assert response.json()["code"] == "idempotency_key_invalid"

    async def test_optional_key_may_be_absent(
        self, client: httpx.AsyncClient, database: Database
    ) -> None:
        for _ in range(2):
            assert (await client.post("/test/optional", json={"amount": 1})).status_code == 201
        assert await count_charges(database) == 2

    @pytest.mark.parametrize("key", ["", "schlüssel", "tab\there"])
    @pytest.mark.parametrize("path", ["/test/charges", "/test/optional"])
    async def test_key_outside_printable_ascii_is_400(
        self, client: httpx.AsyncClient, database: Database, key: str, path: str
    ) -> None:
        # What the OpenAPI document promises: 1 to 255 printable ASCII characters.
        response = await client.post(
            path, json={"amount": 1}, headers={"Idempotency-Key": key.encode("latin-1")}
        )
        assert response.status_code == 400
        assert response.json()["code"] == "idempotency_key_invalid"
        assert await count_charges(database) == 0

    async def test_the_documented_header_matches_the_check(self, client: httpx.AsyncClient) -> None:
        document = (await client.get("/openapi.json")).json()
        for path, required in [("/test/charges", True), ("/test/optional", False)]:
            operation = document["paths"][path]["post"]
            (header,) = [p for p in operation["parameters"] if p["name"] == "Idempotency-Key"]
            assert (header["in"], header["required"]) == ("header", required)
            assert header["schema"] == {
                "type": "string",
                "minLength": 1,
                "maxLength": 255,
                "pattern": "^[ -~]+$",
            }
            assert {"400", "409", "422"} <= set(operation["responses"])


async def test_concurrent_requests_with_one_key_run_once(
    settings: Settings, committing_database: Database
) -> None:
    """PostgreSQL: the second gets 409 while the first runs; SQLite: it waits and replays."""
    app = _app(settings, committing_database)
    headers = {"Idempotency-Key": "race"}
    async with app.router.lifespan_context(app), make_client(app) as client:
        first, second = await asyncio.gather(
            client.post("/test/charges", json={"amount": 7, "slow": True}, headers=headers),
            client.post("/test/charges", json={"amount": 7, "slow": True}, headers=headers),
        )
        statuses = sorted([first.status_code, second.status_code])
        if committing_database.dialect == "postgresql":
            assert statuses == [201, 409]
            loser = first if first.status_code == 409 else second
            assert loser.json()["code"] == "idempotency_key_in_flight"
        else:
            assert statuses == [201, 201]
            assert first.json() == second.json()
        # Either way, a later retry replays the stored response.
        retry = await client.post(
            "/test/charges", json={"amount": 7, "slow": True}, headers=headers
        )
        assert retry.headers["idempotent-replayed"] == "true"
    assert await count_charges(committing_database) == 1
