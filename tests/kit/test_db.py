import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.kit.db import Database, after_commit, untouched
from outreach.models import AuditLog


async def test_datetimes_come_back_aware_in_utc(session: AsyncSession) -> None:
    moment = datetime(2026, 3, 29, 1, 30, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    row = AuditLog(action="test.time", actor_id=None, created_at=moment)
    session.add(row)
    await session.flush()
    session.expunge_all()
    loaded = await session.scalar(select(AuditLog).where(AuditLog.action == "test.time"))
    assert loaded is not None
    assert loaded.created_at == moment
    assert loaded.created_at.tzinfo == UTC


async def test_naive_datetimes_are_refused(session: AsyncSession) -> None:
    session.add(AuditLog(action="test.naive", actor_id=None, created_at=datetime(2026, 1, 1)))
    with pytest.raises(Exception, match="naive"):
        await session.flush()


class TestAfterCommit:
    async def test_runs_after_commit(self, database: Database) -> None:
        ran: list[str] = []

        async def note() -> None:
            ran.append("yes")

        async with database.session() as session:
            after_commit(session, note)
            assert ran == []
        assert ran == ["yes"]

    async def test_dropped_when_the_block_raises(self, database: Database) -> None:
        ran: list[str] = []

        async def note() -> None:
            ran.append("yes")

        async def fail() -> None:
            async with database.session() as session:
                after_commit(session, note)
                raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            await fail()
        assert ran == []

    async def test_dropped_after_an_explicit_rollback(self, database: Database) -> None:
        ran: list[str] = []

        async def note() -> None:
            ran.append("yes")

        async with database.session() as session:
            await session.execute(select(1))
            after_commit(session, note)
            await session.rollback()
        assert ran == []

    async def test_kept_when_only_a_savepoint_rolls_back(self, database: Database) -> None:
        ran: list[str] = []

        async def note() -> None:
            ran.append("yes")

        async with database.session() as session:
            after_commit(session, note)
            savepoint = await session.begin_nested()
            await savepoint.rollback()
        assert ran == ["yes"]


class TestUnusedSession:
    """A block that never used its session skips the empty commit and close (most sends);
    every other block still commits."""

    async def test_a_block_that_did_nothing_is_untouched(self, database: Database) -> None:
        async with database.session() as session:
            assert untouched(session)
        assert untouched(session)

    async def test_a_change_after_a_commit_in_the_block_is_still_committed(
        self, committing_database: Database
    ) -> None:
        async with committing_database.session() as session:
            row = AuditLog(action="test.before", actor_id=None)
            session.add(row)
            await session.commit()  # nothing begun now; the row is still attached
            row.action = "test.after"
            assert not untouched(session)
        async with committing_database.session() as session:
            actions = set(await session.scalars(select(AuditLog.action)))
        assert actions == {"test.after"}

    async def test_a_row_added_is_committed(self, committing_database: Database) -> None:
        async with committing_database.session() as session:
            session.add(AuditLog(action="test.added", actor_id=None))
            assert not untouched(session)
        async with committing_database.session() as session:
            assert await session.scalar(select(AuditLog.action)) == "test.added"

    async def test_after_commit_callbacks_run_for_an_unused_session(
        self, database: Database
    ) -> None:
        ran: list[str] = []

        async def note() -> None:
            ran.append("yes")

        async with database.session() as session:
            after_commit(session, note)
        assert ran == ["yes"]


class TestSessionReuse:
    """A session clean after its block serves a later block: making one costs more than a
    send that only called Gmail. Never two blocks at once, never one left dirty."""

    async def test_a_clean_session_serves_the_next_block(
        self, committing_database: Database
    ) -> None:
        async with committing_database.session() as first:
            pass
        async with committing_database.session() as second:
            session_id = id(second)
            assert untouched(second)
        assert second is first
        async with committing_database.session() as used:
            used.add(AuditLog(action="test.reused", actor_id=None))
        assert id(used) == session_id
        async with committing_database.session() as after:
            # Committed and closed by its block: as new, and it sees the committed row.
            assert untouched(after)
            assert await after.scalar(select(AuditLog.action)) == "test.reused"

    async def test_blocks_at_the_same_time_never_share_a_session(
        self, committing_database: Database
    ) -> None:
        async with committing_database.session():
            pass
        async with (
            committing_database.session() as outer,
            committing_database.session() as inner,
        ):
            assert inner is not outer

    async def test_a_block_that_raised_or_left_notes_gives_no_session_back(
        self, committing_database: Database
    ) -> None:
        with pytest.raises(RuntimeError):
            async with committing_database.session() as failed:
                raise RuntimeError("boom")
        async with committing_database.session() as noted:
            assert noted is not failed
            noted.info["mark"] = True
        async with committing_database.session() as fresh:
            assert fresh is not noted
            assert fresh is not failed
            assert not fresh.info


async def test_an_unreachable_postgresql_is_an_operational_error() -> None:
    """asyncpg raises a bare ConnectionRefusedError; the app answers OperationalError with 503."""
    from sqlalchemy.exc import OperationalError

    from outreach.kit.db import create_engine

    engine = create_engine("postgresql+asyncpg://nobody@127.0.0.1:1/nothing")
    try:
        with pytest.raises(OperationalError, match="cannot reach the database"):
            async with engine.connect() as connection:
                await connection.execute(select(1))
    finally:
        await engine.dispose()


def test_new_row_ids_are_distinct_version_4_uuids() -> None:
    from outreach.kit.db import new_row_ids

    ids = new_row_ids(1000)
    assert len(set(ids)) == 1000
    assert {value.version for value in ids} == {4}
    assert {value.variant for value in ids} == {uuid.RFC_4122}
    assert new_row_ids(0) == []
