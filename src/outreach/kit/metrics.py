"""Prometheus metrics: every figure the service exposes is defined here.

The API serves them at ``GET /metrics`` (outside the OpenAPI schema, no user
session; a bearer token when ``OUTREACH_METRICS_TOKEN`` is set). Workers and
the scheduler serve their own on ``--metrics-port``. Metrics live in the
process: with several API processes on one host, ``PROMETHEUS_MULTIPROC_DIR``
names a directory they share and a scrape adds them up
(``prometheus_client``'s multiprocess mode; it must be set before the process
imports this module, which ``outreach serve --workers N`` does).

Facts about stored rows (credits, payments, email outcomes) are counted once
their transaction commits (:func:`count_after_commit`), so a rolled-back
request never moves a figure. Figures read from the database (the sending
lag) are refreshed by :func:`before_scrape` hooks when the API is scraped.
"""

from __future__ import annotations

import asyncio
import hmac
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.kit.db import after_commit
from outreach.kit.errors import Unauthorized
from outreach.kit.logging import get_logger

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from outreach.kit.db import Database

log = get_logger("outreach.metrics")

MULTIPROC_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
UNMATCHED_ROUTE = "unmatched"  # requests no route matched share one label (bounded)
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

# -- HTTP ---------------------------------------------------------------------------

HTTP_REQUESTS = Counter(
    "outreach_http_requests",
    "HTTP requests answered, by method, route template and status code.",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "outreach_http_request_duration_seconds",
    "Time from receiving a request to the end of its response, by method and route template.",
    ["method", "route"],
)
HTTP_IN_FLIGHT = Gauge(
    "outreach_http_requests_in_flight",
    "Requests being answered right now.",
    multiprocess_mode="livesum",
)

# -- jobs ---------------------------------------------------------------------------

JOBS_SENT = Counter("outreach_jobs_sent", "Jobs sent to the queue, by task.", ["task"])
JOBS_RUN = Counter("outreach_jobs_run", "Job runs (each attempt), by task.", ["task"])
JOBS_FAILED = Counter(
    "outreach_jobs_failed", "Job runs that raised (each attempt), by task.", ["task"]
)
JOBS_GIVEN_UP = Counter(
    "outreach_jobs_given_up",
    "Jobs that failed their last attempt and went to failed_jobs, by task.",
    ["task"],
)
JOB_DURATION = Histogram(
    "outreach_job_duration_seconds",
    "How long a job run took, by task.",
    ["task"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900),
)

# -- emails -------------------------------------------------------------------------

EMAILS_SENT = Counter(
    "outreach_emails_sent", "Campaign emails sent, by mailbox provider.", ["provider"]
)
EMAILS_FAILED = Counter(
    "outreach_emails_failed",
    "Campaign emails that failed for good (credit refunded), by mailbox provider.",
    ["provider"],
)
EMAILS_UNKNOWN = Counter(
    "outreach_emails_unknown",
    "Campaign emails whose send outcome cannot be known (never resent), by provider.",
    ["provider"],
)
EMAILS_DEFERRED_BY_CAP = Counter(
    "outreach_emails_deferred_by_cap",
    "Due campaign emails moved to a later window by a daily cap (the mailbox's, the "
    "campaign's or the provider's), by mailbox provider.",
    ["provider"],
)
EMAIL_EVENTS = Counter(
    "outreach_email_events",
    "What came back for campaign emails, by kind (replied, auto_reply, bounced, "
    "unsubscribed), each counted once.",
    ["kind"],
)
SENDING_LAG = Gauge(
    "outreach_sending_lag_seconds",
    "Age of the oldest due, unsent email of an active campaign (0: none is late).",
    multiprocess_mode="mostrecent",
)

# -- credits and payments -----------------------------------------------------------

CREDITS_DEBITED = Counter(
    "outreach_credits_debited", "Credits taken from balances, by ledger reason.", ["reason"]
)
CREDITS_CREDITED = Counter(
    "outreach_credits_credited", "Credits added to balances, by ledger reason.", ["reason"]
)
PAYMENTS = Counter(
    "outreach_payments",
    "Payment orders entering a status (created, attempted, paid, failed, expired, refunded).",
    ["status"],
)
PAYMENT_MISMATCHES = Counter(
    "outreach_payment_mismatches",
    "Verified payments that did not match their order (nothing credited), by source.",
    ["source"],
)


def method_label(method: str) -> str:
    """The request method, or ``other`` for a made-up one (labels stay bounded)."""
    return method if method in _KNOWN_METHODS else "other"


def count_after_commit(session: AsyncSession, counter: Counter, amount: float = 1.0) -> None:
    """Add ``amount`` to ``counter`` (a labelled child) once ``session`` commits."""

    async def count() -> None:
        counter.inc(amount)

    after_commit(session, count)


# -- figures read from the database at scrape time ----------------------------------

ScrapeHook = Callable[["Database"], Awaitable[None]]
_scrape_hooks: list[ScrapeHook] = []
SCRAPE_HOOK_TIMEOUT_SECONDS = 5.0


def before_scrape(hook: ScrapeHook) -> ScrapeHook:
    """Register ``hook`` to refresh a gauge from the database before each API scrape."""
    if hook not in _scrape_hooks:
        _scrape_hooks.append(hook)
    return hook


async def run_scrape_hooks(database: Database) -> None:
    """Run every hook; one that fails or hangs leaves its gauge as it was (logged)."""
    for hook in _scrape_hooks:
        try:
            await asyncio.wait_for(hook(database), timeout=SCRAPE_HOOK_TIMEOUT_SECONDS)
        except Exception as exc:
            log.warning("metrics refresh failed", hook=hook.__qualname__, error=repr(exc)[:300])


# -- exposition ---------------------------------------------------------------------


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_DIR_VARIABLE) or None


def metrics_registry() -> CollectorRegistry:
    """What a scrape reads: this process's registry, or in multiprocess mode every
    process's figures from the shared directory, added up."""
    directory = multiprocess_dir()
    if directory is None:
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    return registry


def render_metrics() -> bytes:
    return generate_latest(metrics_registry())


def mark_process_dead() -> None:
    """In multiprocess mode, drop this process's live gauges (in-flight requests)
    from the shared directory as it stops."""
    if multiprocess_dir() is not None:
        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


def start_metrics_server(port: int, host: str) -> WSGIServer:
    """Serve this process's figures on ``host:port`` (workers and the scheduler);
    ``port`` 0 picks a free one (``server.server_port``). Stop with ``shutdown()``."""
    server, _thread = start_http_server(port, addr=host, registry=metrics_registry())
    log.info("metrics served", host=host, port=server.server_port)
    return server


class MetricsTokenRequired(Unauthorized):
    code, title = "metrics_token_required", "A metrics bearer token is required"


def _check_token(request: Request) -> None:
    expected = request.app.state.settings.metrics_token
    if expected is None:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), expected.get_secret_value().encode()
    ):
        raise MetricsTokenRequired(
            'send "Authorization: Bearer <OUTREACH_METRICS_TOKEN>"',
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )


router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Prometheus text exposition of every figure (refreshed from the database first)."""
    _check_token(request)
    await run_scrape_hooks(request.app.state.database)
    body = await asyncio.to_thread(render_metrics)  # multiprocess mode reads files
    return Response(body, media_type=CONTENT_TYPE_LATEST)
