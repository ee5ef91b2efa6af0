"""Test harness: a database per xdist worker (migrated once), each test in a
rolled-back transaction, the app with its lifespan, an ASGI client, a clock.

``OUTREACH_TEST_DATABASE_URL`` (PostgreSQL) and ``OUTREACH_TEST_REDIS_URL``
switch the suite to real services; when set and unreachable, tests fail.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from outreach.app import create_app
from outreach.config import Environment, Settings, use_settings
from outreach.kit import jobs
from outreach.kit.clock import Clock, clock
from outreach.kit.db import Base, Database, create_engine
from outreach.migrations.runner import upgrade
from outreach.models import User
from tests.fakes.google import FAKE_CLIENT_ID, FakeGoogle

pytest_plugins = ["tests.fakes.google", "tests.fakes.gmail", "tests.fakes.openai"]

TEST_DATABASE_URL = os.environ.get("OUTREACH_TEST_DATABASE_URL")
TEST_REDIS_URL = os.environ.get("OUTREACH_TEST_REDIS_URL")


def _worker_id() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


@pytest.fixture(scope="session")
def worker_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp(f"outreach-{_worker_id()}")


async def _create_postgres_database(base_url: str, name: str) -> str:
    url = make_url(base_url)
    admin = create_engine(url.render_as_string(hide_password=False), pool_size=1)
    async with admin.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
async def database_url(worker_tmp: Path) -> str:
    if TEST_DATABASE_URL:
        base = make_url(TEST_DATABASE_URL)
        name = f"{base.database}_{_worker_id()}"
        return await _create_postgres_database(TEST_DATABASE_URL, name)
    return f"sqlite+aiosqlite:///{worker_tmp / 'outreach.db'}"


@pytest.fixture(scope="session")
def settings(database_url: str, worker_tmp: Path, fake_google_server: FakeGoogle) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        env=Environment.testing,
        secret_key="test-secret-key-that-is-long-enough-0123456789",
        database_url=database_url,
        redis_url=None,
        storage_path=worker_tmp / "storage",
        checkpoint_sqlite_path=worker_tmp / "checkpoints.sqlite",
        embedded_scheduler=False,
        jobs_inline=True,
        parsing_workers=1,
        send_concurrency=1,  # test sessions share one connection; real runs send in parallel
        inbox_check_concurrency=1,  # likewise for the reply check
        job_retry_base_seconds=0.01,
        base_url="http://testserver",
        cors_origins=["http://testserver"],
        max_body_bytes=1024 * 1024,
        enable_dev_login=True,
        google_jwks_url=fake_google_server.jwks_url,
        google_client_ids=[FAKE_CLIENT_ID],
    )


@pytest.fixture(scope="session", autouse=True)
def active_settings(settings: Settings) -> Iterator[Settings]:
    """Services read ``get_settings()``; in tests that is the test settings."""
    use_settings(settings)
    yield settings
    use_settings(None)


@pytest.fixture(scope="session")
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    import asyncio

    await asyncio.to_thread(upgrade, settings.database_url)
    engine = create_engine(settings.database_url, pool_size=5)
    yield engine
    await engine.dispose()


@pytest.fixture
async def connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    async with engine.connect() as connection:
        transaction = await connection.begin()
        yield connection
        await transaction.rollback()


@pytest.fixture
def database(engine: AsyncEngine, connection: AsyncConnection) -> Database:
    """Every session of the test (requests, jobs) shares the outer transaction."""
    return Database(
        engine,
        async_sessionmaker(
            bind=connection,
            expire_on_commit=False,
            autoflush=False,
            join_transaction_mode="create_savepoint",
        ),
    )


@pytest.fixture
async def session(database: Database) -> AsyncIterator[AsyncSession]:
    async with database.sessionmaker() as session:
        yield session


async def _truncate_all(engine: AsyncEngine) -> None:
    tables = [table.name for table in reversed(Base.metadata.sorted_tables)]
    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            await connection.execute(text(f"TRUNCATE {', '.join(tables)} CASCADE"))
        else:
            for table in tables:
                await connection.execute(text(f"DELETE FROM {table}"))


@pytest.fixture
async def committing_database(engine: AsyncEngine) -> AsyncIterator[Database]:
    """A real database whose sessions really commit; every table is emptied afterwards."""
    yield Database(engine)
    await _truncate_all(engine)


@pytest.fixture
def frozen_clock() -> Iterator[Clock]:
    clock.freeze(datetime(2026, 11, 25, 9, 0, tzinfo=UTC))
    yield clock
    clock.unfreeze()


async def _started_app(settings: Settings, database: Database) -> AsyncIterator[FastAPI]:
    app = create_app(settings, database=database)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def app(settings: Settings, database: Database) -> AsyncIterator[FastAPI]:
    async for started in _started_app(settings, database):
        yield started


def make_client(app: FastAPI) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(app) as client:
        yield client


async def wait_for_jobs() -> None:
    """Let in-process jobs started so far (and their retries) finish."""
    broker = jobs.get_broker()
    wait_all = getattr(broker, "wait_all", None)
    if wait_all is not None:
        for _ in range(20):
            await wait_all()
            if not getattr(broker, "_running_tasks", None):
                break


@pytest.fixture
def redis_url() -> str:
    if not TEST_REDIS_URL:
        pytest.skip("OUTREACH_TEST_REDIS_URL is not set (CI sets it)")
    return TEST_REDIS_URL


async def sign_in(client: httpx.AsyncClient, email: str, name: str | None = None) -> dict:
    """Development login; the client then sends the CSRF header like a browser app would."""
    response = await client.post("/v1/auth/dev-login", json={"email": email, "name": name})
    assert response.status_code == 200, response.text
    client.headers["X-CSRF-Token"] = client.cookies["outreach_csrf"]
    return response.json()


async def create_user(
    session: AsyncSession, email: str, *, role: str = "user", balance: int = 0
) -> User:
    """A user with an open credit account holding ``balance`` (granted through the ledger)."""
    from outreach.auth.service import auth_service
    from outreach.credits.service import credit_service
    from outreach.models import UserRole

    result = await auth_service.dev_login(
        session, email=email, name=None, user_agent=None, ip=None, previous_token=None
    )
    user = result.user
    user.role = UserRole(role)
    current = await credit_service.get_balance(session, user_id=user.id)
    if balance != current:
        await credit_service.apply_ledger_entry(
            session,
            user_id=user.id,
            delta=balance - current,
            reason="admin_grant",
            ref="test",
            idempotency_key=f"test-balance:{user.id}",
        )
    await session.flush()
    return user
