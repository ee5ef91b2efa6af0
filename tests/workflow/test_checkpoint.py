"""The checkpoint store: the official saver for the database in use, set up on first use."""

from __future__ import annotations

from outreach.config import Settings
from outreach.workflow.checkpoint import open_checkpointer, postgres_conninfo, uses_postgres


def test_the_psycopg_connection_string_comes_from_the_sqlalchemy_url(settings: Settings) -> None:
    derived = settings.model_copy(
        update={
            "database_url": "postgresql+asyncpg://app:s3cret@db.internal:6432/outreach"
            "?ssl=require&prepared_statement_cache_size=0",
            "checkpoint_postgres_url": None,
        }
    )
    assert uses_postgres(derived)
    assert postgres_conninfo(derived) == (
        "postgresql://app:s3cret@db.internal:6432/outreach?sslmode=require"
    )
    given = derived.model_copy(update={"checkpoint_postgres_url": "postgresql://other/db"})
    assert postgres_conninfo(given) == "postgresql://other/db"
    assert not uses_postgres(settings.model_copy(update={"database_url": "sqlite+aiosqlite:///x"}))


async def test_the_saver_matches_the_database_and_keeps_checkpoints(settings: Settings) -> None:
    thread = {"configurable": {"thread_id": "test-thread", "checkpoint_ns": ""}}
    async with open_checkpointer(settings) as saver:
        if uses_postgres(settings):
            from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

            assert isinstance(saver, AsyncPostgresSaver)
        else:
            from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

            assert isinstance(saver, AsyncSqliteSaver)
            assert settings.checkpoint_sqlite_path.exists()  # its own file, not the app's
        checkpoint = {
            "v": 1,
            "id": "1ef00000-0000-6000-8000-000000000001",
            "ts": "2026-11-25T09:00:00+00:00",
            "channel_values": {"done": 3},
            "channel_versions": {"done": 1},
            "versions_seen": {},
            "updated_channels": ["done"],
        }
        await saver.aput(thread, checkpoint, {"step": 1}, {"done": 1})  # type: ignore[arg-type]
    async with open_checkpointer(settings) as saver:  # another connection reads it back
        found = await saver.aget_tuple(thread)  # type: ignore[arg-type]
        assert found is not None
        assert found.checkpoint["channel_values"] == {"done": 3}
        await saver.adelete_thread("test-thread")
        assert await saver.aget_tuple(thread) is None  # type: ignore[arg-type]
