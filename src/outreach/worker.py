"""Entry points of the ``outreach worker`` and ``outreach scheduler`` processes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from taskiq.api import run_receiver_task, run_scheduler_task

from outreach import tasks  # noqa: F401 - registers every job
from outreach.config import Settings, check_settings, get_settings
from outreach.kit import jobs
from outreach.kit.db import Database, set_database
from outreach.kit.logging import configure_logging, get_logger
from outreach.kit.metrics import mark_process_dead, start_metrics_server
from outreach.kit.parsing_pool import ParsingPool, clear_parsing_pool, set_parsing_pool
from outreach.kit.sentry import flush_sentry, init_sentry
from outreach.llm.service import llm_service
from outreach.mailbox.http import close_google_http
from outreach.payment.gateway import razorpay_clients

log = get_logger("outreach.worker")


def _require_redis(settings: Settings, role: str) -> None:
    if not settings.redis_url:
        raise SystemExit(
            f"outreach {role} needs OUTREACH_REDIS_URL; without it, jobs run inside "
            "`outreach serve` (the embedded default)"
        )


@contextlib.asynccontextmanager
async def observability(settings: Settings, role: str, port: int | None) -> AsyncIterator[None]:
    """Sentry, and this process's own figures on ``port`` (the option, else the
    setting), for the life of a worker or the scheduler, however it stops."""
    init_sentry(settings, component=role)
    port = settings.metrics_port if port is None else port
    server = None if port is None else start_metrics_server(port, settings.metrics_host)
    try:
        yield
    finally:
        if server is not None:
            await asyncio.to_thread(server.shutdown)
            server.server_close()
        mark_process_dead()
        await asyncio.to_thread(flush_sentry)


async def run_worker(*, max_async_tasks: int = 50, metrics_port: int | None = None) -> None:
    settings = get_settings()
    check_settings(settings)
    configure_logging(settings)
    _require_redis(settings, "worker")
    async with observability(settings, "worker", metrics_port):
        await _receive_jobs(settings, max_async_tasks)


async def _receive_jobs(settings: Settings, max_async_tasks: int) -> None:
    database = Database.from_settings(settings)
    set_database(database)
    pool = ParsingPool.from_settings(settings)  # imports parse untrusted files in it
    pool.start()
    set_parsing_pool(pool)
    broker = jobs.create_broker(settings)
    jobs.set_broker(broker)
    # Set before startup (as taskiq's own CLI does), so worker start-up hooks run.
    broker.is_worker_process = True
    await broker.startup()
    log.info("worker started", jobs=sorted(jobs.registered_jobs()))
    try:
        await run_receiver_task(broker, max_async_tasks=max_async_tasks)
    finally:
        await broker.shutdown()
        await close_google_http()
        await razorpay_clients.aclose()
        await llm_service.aclose()
        clear_parsing_pool(pool)
        await pool.stop()
        await database.dispose()


async def run_scheduler(*, metrics_port: int | None = None) -> None:
    settings = get_settings()
    check_settings(settings)
    configure_logging(settings)
    _require_redis(settings, "scheduler")
    async with observability(settings, "scheduler", metrics_port):
        broker = jobs.create_broker(settings)
        broker.is_scheduler_process = True
        await broker.startup()
        log.info("scheduler started")
        try:
            await run_scheduler_task(jobs.create_scheduler(broker))
        finally:
            await broker.shutdown()
