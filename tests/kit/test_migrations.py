"""The models and the migrations agree, and the migrations go down and up again."""

import asyncio
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from outreach.kit.db import create_engine
from outreach.migrations.runner import downgrade, include_object, upgrade
from outreach.models import Base
from tests.conftest import TEST_DATABASE_URL, _create_postgres_database, _worker_id


@pytest.fixture
async def scratch_url(worker_tmp: Path) -> str:
    if TEST_DATABASE_URL:
        from sqlalchemy.engine import make_url

        name = f"{make_url(TEST_DATABASE_URL).database}_{_worker_id()}_migrations"
        return await _create_postgres_database(TEST_DATABASE_URL, name)
    path = worker_tmp / "migrations.db"
    path.unlink(missing_ok=True)
    return f"sqlite+aiosqlite:///{path}"


def _diff(connection: Connection) -> list[object]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "include_object": include_object}
    )
    return list(compare_metadata(context, Base.metadata))


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names()) - {"alembic_version"}


async def test_upgrade_downgrade_upgrade_and_no_autogenerate_diff(scratch_url: str) -> None:
    await asyncio.to_thread(upgrade, scratch_url)
    engine = create_engine(scratch_url)
    try:
        async with engine.connect() as connection:
            assert await connection.run_sync(_diff) == []
            assert await connection.run_sync(_tables) == set(Base.metadata.tables)
        await asyncio.to_thread(downgrade, scratch_url, "base")
        async with engine.connect() as connection:
            assert await connection.run_sync(_tables) == set()
        await asyncio.to_thread(upgrade, scratch_url)
        async with engine.connect() as connection:
            assert await connection.run_sync(_diff) == []
    finally:
        await engine.dispose()
