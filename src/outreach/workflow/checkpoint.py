"""Where graph runs keep their checkpoints, and how a job runs a graph durably.

On PostgreSQL the official ``AsyncPostgresSaver`` (psycopg 3) writes to the
application's database, in its own tables (``checkpoint_*``, created by the
saver's ``setup()`` on first use and excluded from Alembic autogenerate). In
the embedded default (SQLite) the ``AsyncSqliteSaver`` writes to its own file
(``OUTREACH_CHECKPOINT_SQLITE_PATH``), so checkpoint writes never queue behind
the application's ``BEGIN IMMEDIATE`` transactions.

:func:`run_durably` runs a graph under a thread id (the job's id): when a
checkpoint of an unfinished run exists it resumes at the step that was
running; a finished run's checkpoints are deleted.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START
from langgraph.graph.state import StateGraph
from langgraph.types import Durability
from sqlalchemy.engine import make_url

from outreach.config import Settings, get_settings
from outreach.kit.logging import get_logger

log = get_logger("outreach.workflow")

# Serialises the saver's setup() across processes (two workers starting at once
# would both insert the same migration version).
_SETUP_LOCK_KEY = 0x0C4EC6

# Parameters asyncpg understands and libpq does not.
_ASYNCPG_ONLY = {"prepared_statement_cache_size", "prepared_statement_name_func", "command_timeout"}

_prepared: set[str] = set()
_prepare_lock = asyncio.Lock()


def postgres_conninfo(settings: Settings) -> str:
    """The psycopg 3 connection string of the checkpoint store: the setting when
    given, else the application's SQLAlchemy URL without its driver
    (``postgresql+asyncpg://`` → ``postgresql://``, ``ssl=`` → ``sslmode=``)."""
    if settings.checkpoint_postgres_url:
        return settings.checkpoint_postgres_url
    url = make_url(settings.database_url)
    query = {k: v for k, v in url.query.items() if k not in _ASYNCPG_ONLY}
    if "ssl" in query:
        query["sslmode"] = query.pop("ssl")
    return url.set(drivername="postgresql", query=query).render_as_string(hide_password=False)


def uses_postgres(settings: Settings) -> bool:
    return make_url(settings.database_url).get_backend_name() == "postgresql"


@asynccontextmanager
async def open_checkpointer(
    settings: Settings | None = None,
) -> AsyncIterator[BaseCheckpointSaver[Any]]:
    """A checkpoint saver for these settings, set up on first use in this process."""
    settings = settings or get_settings()
    if uses_postgres(settings):
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

        conninfo = postgres_conninfo(settings)
        async with AsyncPostgresSaver.from_conn_string(conninfo) as saver:
            await _prepare_once(conninfo, saver)
            yield saver
        return
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    path = settings.checkpoint_sqlite_path
    path.parent.mkdir(parents=True, exist_ok=True)
    async with AsyncSqliteSaver.from_conn_string(str(path)) as sqlite_saver:
        # As the application's database: a commit waits for no fsync (WAL, NORMAL).
        # A process that dies loses nothing committed; a checkpoint lost to a power
        # failure only sends the run back a step, which the job's own row corrects.
        await sqlite_saver.conn.execute("PRAGMA journal_mode=WAL")
        await sqlite_saver.conn.execute("PRAGMA synchronous=NORMAL")
        await sqlite_saver.setup()  # CREATE TABLE IF NOT EXISTS, once per connection
        yield sqlite_saver


async def _prepare_once(conninfo: str, saver: Any) -> None:
    async with _prepare_lock:
        if conninfo in _prepared:
            return
        await saver.conn.execute("SELECT pg_advisory_lock(%s)", (_SETUP_LOCK_KEY,))
        try:
            await saver.setup()
        finally:
            await saver.conn.execute("SELECT pg_advisory_unlock(%s)", (_SETUP_LOCK_KEY,))
        _prepared.add(conninfo)


async def run_durably(
    graph: StateGraph[Any, Any, Any, Any],
    *,
    thread_id: str,
    start: Mapping[str, Any],
    context: Any,
    max_steps: int,
    durability: Durability = "sync",
) -> dict[str, Any]:
    """Run ``graph`` to its end under ``thread_id``, resuming an unfinished run.

    By default every step's checkpoint is written before the next step starts
    (``durability="sync"``), so a run that crashed resumes at the step that was
    running, with the state the finished steps left. With ``"async"`` a step's
    checkpoint is written while the next step runs: a crash can then resume one
    step back, which suits a graph whose steps find their real position in the
    job's own row (bulk verification). The thread's checkpoints are deleted once
    the run ends; the job's own row says it is finished."""
    async with open_checkpointer() as saver:
        compiled = graph.compile(checkpointer=saver)
        config: RunnableConfig = {
            "configurable": {"thread_id": thread_id},
            "recursion_limit": max_steps,
        }
        snapshot = await compiled.aget_state(config)
        values: dict[str, Any] = dict(snapshot.values or {})
        if snapshot.next:
            log.info("resuming workflow", thread_id=thread_id, at=list(snapshot.next))
            values = await compiled.ainvoke(None, config, context=context, durability=durability)
        elif not values:
            values = await compiled.ainvoke(
                dict(start), config, context=context, durability=durability
            )
        await saver.adelete_thread(thread_id)
        return values


def batched_run_graph(
    state: type[Any], context: type[Any], *, start_run: Any, batch: Any, settle: Any
) -> StateGraph[Any, Any, Any, Any]:
    """The shape of a bulk job's run: ``start_run`` → ``batch`` once per batch until
    the state says ``complete`` → ``settle``; a run whose job is gone or already
    finished (``skipped``) ends at once. Each node returns the job's new position,
    which the checkpoint after it records."""
    step = batch.__name__

    def after_start(current: Mapping[str, Any]) -> str:
        if current.get("skipped"):
            return END
        return "settle" if current.get("complete") else step

    def after_batch(current: Mapping[str, Any]) -> str:
        return "settle" if current.get("complete") else step

    graph: StateGraph[Any, Any, Any, Any] = StateGraph(state, context_schema=context)
    graph.add_node("start_run", start_run)
    graph.add_node(step, batch)
    graph.add_node("settle", settle)
    graph.add_edge(START, "start_run")
    graph.add_conditional_edges("start_run", after_start, [step, "settle", END])
    graph.add_conditional_edges(step, after_batch, [step, "settle"])
    graph.add_edge("settle", END)
    return graph
