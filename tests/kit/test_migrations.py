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


async def test_charge_key_backfill_gives_unsettled_jobs_their_own_debit(scratch_url: str) -> None:
    """Jobs queued or running when ``verification_jobs.charge_key`` arrives get the key
    of the debit that names them, so their settlement still refunds; a job whose debit
    was a replay of another's (the bug) gets none, and a settled job is left alone."""
    import uuid

    from sqlalchemy import select

    from outreach.models import LedgerEntry, User, VerificationJob

    await asyncio.to_thread(upgrade, scratch_url, "3f5b9e2c7a10")
    user_id, paid, replayed, settled, enrich = (uuid.uuid4() for _ in range(5))
    jobs = [
        (paid, "verify", "running"),
        (replayed, "verify", "queued"),
        (settled, "verify", "completed"),
        (enrich, "enrich", "queued"),
    ]
    debits = [
        (f"verification_job:{paid}", "verify", f"verify:bulk:{user_id}:k"),
        (f"verification_job:{settled}", "verify", f"verify:bulk:{user_id}:old"),
        (f"enrich_job:{enrich}", "enrich", f"enrich:bulk:{user_id}:k"),
    ]
    engine = create_engine(scratch_url)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                User.__table__.insert().values(id=user_id, email="ada@example.com", role="user")
            )
            for job_id, kind, status in jobs:
                await connection.execute(
                    VerificationJob.__table__.insert().values(
                        id=job_id, user_id=user_id, kind=kind, status=status, counts={}, input={}
                    )
                )
            for balance, (ref, reason, key) in enumerate(debits):
                await connection.execute(
                    LedgerEntry.__table__.insert().values(
                        id=uuid.uuid4(),
                        user_id=user_id,
                        delta=-5,
                        reason=reason,
                        ref=ref,
                        idempotency_key=key,
                        balance_after=balance,
                    )
                )
        await asyncio.to_thread(upgrade, scratch_url)
        async with engine.connect() as connection:
            rows = await connection.execute(select(VerificationJob.id, VerificationJob.charge_key))
            keys = dict(rows.all())
    finally:
        await engine.dispose()
    assert keys == {
        paid: f"verify:bulk:{user_id}:k",
        replayed: None,
        settled: None,
        enrich: f"enrich:bulk:{user_id}:k",
    }
