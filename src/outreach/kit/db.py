"""Async engine, sessions and the column types shared by every table.

SQLite (embedded default) runs in WAL mode with foreign keys on and every
transaction started with ``BEGIN IMMEDIATE``: writers are serialised, so a
read-then-write never fails half-way with ``SQLITE_BUSY`` and a second
request carrying the same idempotency key waits for the first and replays.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar
from typing import cast as typing_cast

from fastapi import Depends, Request
from sqlalchemy import (
    JSON,
    DateTime,
    MetaData,
    String,
    bindparam,
    cast,
    column,
    event,
    func,
    inspect,
    select,
    text,
    type_coerce,
)
from sqlalchemy.engine import Connection, Dialect, ExceptionContext, make_url
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, Session
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeDecorator

from outreach.config import Settings
from outreach.kit.openapi import declares_problems

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite returns naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use kit.clock")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# Values bound in one ``IN (…)`` list. A statement takes at most 32,767 parameters on
# PostgreSQL (asyncpg) and 32,766 on SQLite, and a campaign may have 100,000 recipients.
IN_LIST_MAX = 5_000

_Value = TypeVar("_Value")


def in_batches(values: Iterable[_Value], size: int = IN_LIST_MAX) -> Iterator[list[_Value]]:
    """``values`` in lists of at most ``size``, one ``IN (…)`` query each."""
    batch: list[_Value] = []
    for value in values:
        batch.append(value)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def new_row_ids(count: int) -> list[uuid.UUID]:
    """``count`` random (version 4) UUIDs for rows inserted in bulk, from one read of the
    OS's random source: ``uuid.uuid4()`` reads it once per id, a system call each."""
    data = os.urandom(16 * count)
    return [
        uuid.UUID(bytes=data[start : start + 16], version=4) for start in range(0, 16 * count, 16)
    ]


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


def _prepare_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver so BEGIN IMMEDIATE is ours.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _lost_connection(error: BaseException | None) -> bool:
    """A network failure, or SQLSTATE class 08 (connection exception), in the chain."""
    while error is not None:
        if isinstance(error, OSError) or str(getattr(error, "sqlstate", "")).startswith("08"):
            return True
        error = error.__cause__
    return False


def _prepare_postgresql(engine: AsyncEngine) -> None:
    """Make a database that cannot be reached, or a connection that drops mid-request, an
    ``OperationalError`` (answered 503): asyncpg raises a bare ``OSError`` when the
    server refuses and a generic error when the link drops."""

    @event.listens_for(engine.sync_engine, "do_connect")
    def _connect(dialect: Dialect, _record: ConnectionPoolEntry, cargs: Any, cparams: Any) -> Any:
        try:
            return dialect.connect(*cargs, **cparams)
        except Exception as exc:
            if _lost_connection(exc):
                error = f"cannot reach the database: {exc}"
                raise dialect.loaded_dbapi.OperationalError(error) from exc
            raise

    @event.listens_for(engine.sync_engine, "handle_error")
    def _dropped(context: ExceptionContext) -> BaseException | None:
        if isinstance(context.sqlalchemy_exception, OperationalError | InterfaceError):
            return None
        if not (context.is_disconnect or _lost_connection(context.original_exception)):
            return None
        context.is_disconnect = True  # so the pool throws the connection away
        return OperationalError(
            context.statement,
            context.parameters,
            context.original_exception,
            connection_invalidated=True,
        )


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30})
        _prepare_sqlite(engine)
        return engine
    engine = create_async_engine(
        url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
    )
    _prepare_postgresql(engine)
    return engine


def dialect_insert(session: AsyncSession) -> Any:
    """The dialect's INSERT construct, which knows ``ON CONFLICT`` on both databases."""
    from sqlalchemy.dialects.postgresql import insert as pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


def json_rows(
    session: AsyncSession, rows: list[dict[str, Any]] | str, **columns: Any
) -> dict[str, ColumnElement[Any]]:
    """``rows`` as a table to join in one statement (``UPDATE … FROM``), sent as a
    single JSON parameter rather than one parameter per value, so a batch costs one
    statement and one bound value. ``columns`` names each key and its type; the result
    maps each name to its column (use them in more than one statement: the document is
    serialised once). ``rows`` may come serialised already, as a JSON array of objects
    (a caller whose rows repeat the same values serialises each value once)."""
    # Serialised here, once: statements sharing these columns bind the same text.
    serialised = rows if isinstance(rows, str) else json.dumps(rows)
    document: ColumnElement[Any] = bindparam(None, serialised, type_=String)
    if session.get_bind().dialect.name == "postgresql":
        table = (
            func.json_to_recordset(cast(document, JSON))
            .table_valued(*(column(name, kind) for name, kind in columns.items()))
            .render_derived(with_types=True)
        )
        return {name: table.c[name] for name in columns}
    each = func.json_each(document).table_valued("value")
    fields = [
        type_coerce(func.json_extract(each.c.value, f"$.{name}"), kind).label(name)
        for name, kind in columns.items()
    ]
    # ORDER BY keeps SQLite from flattening the subquery into the join: the document
    # is read once, and each row finds its target through the target's index (the
    # flattened join reads the whole document again for every target row).
    ordered = select(*fields).order_by(fields[0]).subquery()
    return {name: ordered.c[name] for name in columns}


_UNUSED_KEPT = 64


class Database:
    """An engine and its session factory."""

    def __init__(
        self, engine: AsyncEngine, sessionmaker: async_sessionmaker[AsyncSession] | None = None
    ) -> None:
        self.engine = engine
        self.sessionmaker = sessionmaker or async_sessionmaker(
            engine, expire_on_commit=False, autoflush=False
        )
        # Sessions whose block never used them, ready for the next block: making one
        # costs more than a send that only called Gmail (see ``session``).
        self._unused: list[AsyncSession] = []

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        return cls(create_engine(settings.database_url, pool_size=settings.database_pool_size))

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """One unit of work: commits when the block succeeds, rolls back when it raises.
        A block that never used its session (a send that only called Gmail) has nothing to
        commit or close, and skips both; a session closed and clean after its block is
        kept for a later block (one at a time), as new, since making one costs more than
        such a send's other work. Do not keep a session past its block."""
        session = self._unused.pop() if self._unused else self.sessionmaker()
        try:
            try:
                yield session
                await run_before_commit(session)
            except BaseException:
                await session.rollback()
                raise
            if not untouched(session):
                await session.commit()
        finally:
            if not untouched(session):
                await session.__aexit__(None, None, None)  # closes, even when cancelled
        await run_after_commit(session)
        if untouched(session) and not session.info and len(self._unused) < _UNUSED_KEPT:
            self._unused.append(session)  # as good as new: nothing begun, held or noted

    @asynccontextmanager
    async def pinned(self) -> AsyncIterator[Database]:
        """This database with every session of the block on one connection, checked out
        (and pre-pinged) once: a job that runs many short transactions in a row pays
        for the pool once, not per transaction. Each session still commits or rolls
        back its own transaction. A database whose sessions already share one
        connection (the tests' outer transaction) is itself."""
        if isinstance(self.sessionmaker.kw.get("bind"), AsyncConnection):
            yield self
            return
        async with self.engine.connect() as connection:
            options = {**self.sessionmaker.kw, "bind": connection}
            yield Database(
                self.engine, async_sessionmaker(class_=self.sessionmaker.class_, **options)
            )

    async def ping(self) -> None:
        async with self.sessionmaker() as session:
            await session.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


_database: Database | None = None


def set_database(database: Database | None) -> None:
    global _database
    _database = database


def get_database() -> Database:
    """The process-wide database (set by the app lifespan, the worker, or the CLI)."""
    if _database is None:
        raise RuntimeError("database not initialised")
    return _database


@declares_problems(503)  # database_unavailable (kit.exception_handlers)
async def get_db_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's unit of work; declared with ``scope="function"`` so the commit
    happens before the response is sent, and jobs are enqueued only after it."""
    database: Database = request.app.state.database
    async with database.sessionmaker() as session:
        try:
            yield session
            await run_before_commit(session)
        except BaseException:
            await session.rollback()
            raise
        await session.commit()
    await run_after_commit(session)


def untouched(session: AsyncSession) -> bool:
    """Nothing begun (so no connection held) and no row attached: committing or closing
    ``session`` would do nothing. (Attaching a row begins a transaction; a row changed
    after a commit is still in the identity map.)"""
    return not (session.in_transaction() or session.identity_map or session.new or session.deleted)


_Row = TypeVar("_Row", bound=Base)


async def in_session(session: AsyncSession, row: _Row) -> _Row:
    """``row`` as ``session``'s own object, so that changes to it are written by it:
    itself when it belongs to the session, the session's copy when it already holds
    that row (never overwritten with older values), else a copy made without a query.
    For a row loaded elsewhere and shared read-only (the claimed emails of a tick)."""
    if row in session:
        return row
    key = inspect(row).key
    present = session.identity_map.get(key) if key is not None else None
    if present is not None:
        return typing_cast(_Row, present)
    return await session.merge(row, load=False)


@event.listens_for(Session, "after_soft_rollback")
def _forget_after_commit_callbacks(session: Session, previous_transaction: Any) -> None:
    # The outermost transaction rolled back: what was to follow its commit never will.
    if previous_transaction.parent is None:
        session.info.pop("after_commit", None)
        session.info.pop("before_commit", None)


def before_commit(session: AsyncSession, check: Callable[[], Awaitable[Any]]) -> None:
    """Run ``check`` (once, however often it is registered) just before the session's
    transaction commits; if it raises, the transaction rolls back instead."""
    checks = session.info.setdefault("before_commit", [])
    if check not in checks:
        checks.append(check)


async def run_before_commit(session: AsyncSession) -> None:
    for check in session.info.pop("before_commit", []):
        await check()


def after_commit(session: AsyncSession, callback: Callable[[], Awaitable[Any]]) -> None:
    """Run ``callback`` once the session's transaction has committed (never on rollback)."""
    session.info.setdefault("after_commit", []).append(callback)


async def run_after_commit(session: AsyncSession) -> None:
    callbacks = session.info.pop("after_commit", [])
    for callback in callbacks:
        await callback()


SessionDep = Annotated[AsyncSession, Depends(get_db_session, scope="function")]
