"""The FastAPI application: middleware, routers, error handlers and lifespan."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from redis.asyncio import Redis
from redis.exceptions import RedisError
from taskiq import AsyncBroker

from outreach import tasks  # noqa: F401 - registers every job before a broker is built
from outreach.api import api_router
from outreach.auth.google import GoogleKeys, GoogleTokenVerifier
from outreach.config import Settings, check_settings, get_settings, use_settings
from outreach.kit import jobs
from outreach.kit.db import Database, set_database
from outreach.kit.exception_handlers import install_exception_handlers
from outreach.kit.health import router as health_router
from outreach.kit.idempotency import IdempotentRoute
from outreach.kit.logging import configure_logging, get_logger
from outreach.kit.metrics import mark_process_dead
from outreach.kit.metrics import router as metrics_router
from outreach.kit.middleware import RequestContextMiddleware
from outreach.kit.openapi import build_openapi
from outreach.kit.parsing_pool import ParsingPool, clear_parsing_pool, set_parsing_pool
from outreach.kit.sentry import flush_sentry, init_sentry
from outreach.kit.shutdown import stop_request, within
from outreach.kit.storage import create_storage, set_storage
from outreach.llm.service import llm_service
from outreach.mailbox.http import close_google_http
from outreach.payment.gateway import razorpay_clients
from outreach.web import install_web

log = get_logger("outreach.app")


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    database = app.state.database or Database.from_settings(settings)
    app.state.database = database
    set_database(database)
    app.state.storage = create_storage(settings)
    set_storage(app.state.storage)
    app.state.parsing_pool = ParsingPool.from_settings(settings)
    app.state.parsing_pool.start()  # workers up before the first upload
    set_parsing_pool(app.state.parsing_pool)
    app.state.redis = Redis.from_url(settings.redis_url) if settings.redis_url else None
    google_http = httpx.AsyncClient(timeout=httpx.Timeout(10.0))
    app.state.google_verifier = GoogleTokenVerifier(
        GoogleKeys(settings.google_jwks_url, google_http), settings.google_client_ids
    )
    broker = jobs.create_broker(settings)
    jobs.set_broker(broker)
    try:
        await broker.startup()
    except (RedisError, OSError) as exc:
        # Start anyway: /ready reports Redis down, and enqueueing recovers with it.
        log.error("job broker unavailable at start-up", error=str(exc))
    scheduler_task: asyncio.Task[None] | None = None
    if settings.redis_url is None and settings.embedded_scheduler:
        from taskiq.api import run_scheduler_task

        scheduler_task = asyncio.create_task(run_scheduler_task(jobs.create_scheduler(broker)))
    stop_request.reset()
    log.info("started", env=settings.env.value, database=database.dialect)
    try:
        yield
    finally:
        # Embedded jobs stop as a worker does: no new claim, the running ones finish.
        stop_request.request()
        if scheduler_task is not None:
            scheduler_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await scheduler_task
        await _finish_embedded_jobs(broker, settings.stop_grace_seconds)
        await broker.shutdown()
        jobs.set_broker(None)
        await google_http.aclose()
        set_storage(None)
        await app.state.storage.close()
        clear_parsing_pool(app.state.parsing_pool)
        await app.state.parsing_pool.stop()
        await llm_service.aclose()
        await close_google_http()
        await razorpay_clients.aclose()
        if app.state.redis is not None:
            await app.state.redis.aclose()
        if app.state.owns_database:
            await database.dispose()
        set_database(None)
        mark_process_dead()
        await asyncio.to_thread(flush_sentry)
        stop_request.reset()  # a new app in this process (tests) starts afresh


async def _finish_embedded_jobs(broker: AsyncBroker, grace: float) -> None:
    """Wait up to ``grace`` seconds for the jobs running in this process (the in-process
    broker); one still running after that is abandoned, its leases reconciled later."""
    running = list(getattr(broker, "_running_tasks", ()))
    if running and not await within(
        grace, "embedded jobs", asyncio.gather(*running, return_exceptions=True)
    ):
        log.warning("embedded jobs still running at the end of the grace period")


def _openapi(app: FastAPI) -> dict[str, Any]:
    if not app.openapi_schema:
        app.openapi_schema = build_openapi(app)
    return app.openapi_schema


def create_app(settings: Settings | None = None, *, database: Database | None = None) -> FastAPI:
    """Build the app. ``database`` lets tests share an engine; otherwise one is created."""
    settings = settings or get_settings()
    check_settings(settings)
    use_settings(settings)
    configure_logging(settings)
    init_sentry(settings, component="api")
    app = FastAPI(
        title="Outreach",
        version="0.1.0",
        summary="Personalised cold email from your own Gmail, paid with prepaid credits.",
        lifespan=lifespan,
    )
    app.router.route_class = IdempotentRoute
    app.state.settings = settings
    app.state.database = database
    app.state.owns_database = database is None
    install_exception_handlers(app)
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_credentials=True,
        allow_methods=["GET", "POST", "PATCH", "PUT", "DELETE"],
        allow_headers=["Content-Type", "Idempotency-Key", "X-CSRF-Token", "X-Request-ID"],
        expose_headers=["X-Request-ID", "Idempotent-Replayed", "Retry-After"],
    )
    app.add_middleware(RequestContextMiddleware, max_body_bytes=settings.max_body_bytes)
    app.include_router(health_router)
    app.include_router(metrics_router)
    app.include_router(api_router(settings))
    install_web(app)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app
