"""Entry points of the ``outreach worker`` and ``outreach scheduler`` processes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from taskiq import AsyncBroker
from taskiq.api import run_scheduler_task
from taskiq.receiver import Receiver

from outreach import tasks  # noqa: F401 - registers every job
from outreach.config import Settings, check_settings, get_settings
from outreach.kit import jobs
from outreach.kit.db import Database, set_database
from outreach.kit.logging import configure_logging, get_logger
from outreach.kit.metrics import mark_process_dead, start_metrics_server
from outreach.kit.parsing_pool import ParsingPool, clear_parsing_pool, set_parsing_pool
from outreach.kit.sentry import flush_sentry, init_sentry
from outreach.kit.shutdown import close_all, stop_on_signals, stop_request, within
from outreach.llm.service import llm_service
from outreach.mailbox.http import close_google_http
from outreach.payment.gateway import razorpay_clients

log = get_logger("outreach.worker")

# After the jobs' grace period: closing the Redis read the receiver was blocked in,
# then every client, the broker and the database, in this long in all; a step that
# hangs is abandoned so the process still exits in time.
RECEIVER_CLOSE_SECONDS = 2.0
CLEAN_UP_SECONDS = 5.0


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
    stop_on_signals()
    await broker.startup()
    log.info("worker started", jobs=sorted(jobs.registered_jobs()))
    try:
        await _listen_until_stopped(broker, max_async_tasks, settings.stop_grace_seconds)
    finally:
        await close_all(
            CLEAN_UP_SECONDS,
            [
                ("broker", broker.shutdown),
                ("google http", close_google_http),
                ("razorpay", razorpay_clients.aclose),
                ("llm", llm_service.aclose),
                ("parsing pool", lambda: _stop_pool(pool)),
                ("database", database.dispose),
            ],
        )
        log.info("worker stopped")


async def _listen_until_stopped(broker: AsyncBroker, max_async_tasks: int, grace: float) -> None:
    """Run jobs until a stop is requested; then take no new message, and give the jobs
    in flight ``grace`` seconds (the send tick stops claiming and releases what it has
    not started). A job still running after that is abandoned: its message was never
    acknowledged, so Redis hands it to another worker later."""
    finish = asyncio.Event()
    with ThreadPoolExecutor() as executor:
        receiver = Receiver(
            broker,
            executor,
            max_async_tasks=max_async_tasks,
            run_startup=False,
            wait_tasks_timeout=grace,
        )
        listening = asyncio.create_task(receiver.listen(finish))
        stopping = asyncio.create_task(stop_request.wait())
        await asyncio.wait({listening, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if listening.done():
            listening.result()  # the receiver failed on its own: say why
            return
        log.info("worker stopping: finishing the jobs in flight", grace_seconds=grace)
        finish.set()
        # The receiver waits up to `grace` for its jobs; closing the Redis read it
        # was blocked in gets a few seconds more before it is abandoned.
        if not await within(grace + RECEIVER_CLOSE_SECONDS, "receiver", listening):
            log.warning("jobs still running at the end of the grace period were abandoned")


def _stop_pool(pool: ParsingPool) -> Awaitable[None]:
    clear_parsing_pool(pool)
    return pool.stop()


async def run_scheduler(*, metrics_port: int | None = None) -> None:
    settings = get_settings()
    check_settings(settings)
    configure_logging(settings)
    _require_redis(settings, "scheduler")
    async with observability(settings, "scheduler", metrics_port):
        broker = jobs.create_broker(settings)
        broker.is_scheduler_process = True
        stop_on_signals()
        await broker.startup()
        log.info("scheduler started")
        try:
            await run_until_stopped(run_scheduler_task(jobs.create_scheduler(broker)))
        finally:
            await close_all(CLEAN_UP_SECONDS, [("broker", broker.shutdown)])
            log.info("scheduler stopped")


async def run_until_stopped(loop: Coroutine[Any, Any, None]) -> None:
    """Run a loop that only sends work (the scheduler) until a stop is requested, then
    cancel it: it holds nothing that needs finishing."""
    running = asyncio.create_task(loop)
    stopping = asyncio.create_task(stop_request.wait())
    await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if running.done():
        running.result()
        return
    running.cancel()
    await asyncio.wait({running}, timeout=RECEIVER_CLOSE_SECONDS)
