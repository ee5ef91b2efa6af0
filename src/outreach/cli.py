"""The ``outreach`` command: serve, worker, scheduler, migrate, and operator tools."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from sqlalchemy.ext.asyncio import AsyncSession

if TYPE_CHECKING:
    from outreach.kit.db import Database

from outreach.config import check_settings, get_settings
from outreach.kit.errors import AppError

app = typer.Typer(
    help="Outreach: personalised cold email from your own Gmail.", no_args_is_help=True
)


MetricsPort = Annotated[
    int | None,
    typer.Option(
        help="Serve this process's Prometheus metrics on this port "
        "(default: OUTREACH_METRICS_PORT; unset: none)."
    ),
]


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    reload: Annotated[bool, typer.Option(help="Restart on code changes (development).")] = False,
    workers: Annotated[
        int, typer.Option(min=1, help="API processes (more than one needs OUTREACH_REDIS_URL).")
    ] = 1,
) -> None:
    """Run the HTTP API (and, without Redis, the in-process jobs and scheduler)."""
    import uvicorn

    settings = get_settings()
    check_settings(settings)
    if workers > 1:
        if not settings.redis_url:
            # Each process would run its own embedded jobs and scheduler.
            typer.echo("error: --workers above 1 needs OUTREACH_REDIS_URL", err=True)
            raise typer.Exit(code=1)
        _share_metrics_between_processes()
    uvicorn.run(
        "outreach.app:create_app",
        factory=True,
        host=host,
        port=port,
        reload=reload,
        workers=workers,
        access_log=False,
        proxy_headers=True,
    )


def _share_metrics_between_processes() -> None:
    """Several API processes add their metrics up through files in one directory
    (prometheus_client's multiprocess mode); the processes inherit the variable."""
    import os
    import tempfile

    from outreach.kit.metrics import MULTIPROC_DIR_VARIABLE

    if not os.environ.get(MULTIPROC_DIR_VARIABLE):
        os.environ[MULTIPROC_DIR_VARIABLE] = tempfile.mkdtemp(prefix="outreach-metrics-")


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option(help="Jobs run at the same time.")] = 50,
    metrics_port: MetricsPort = None,
) -> None:
    """Run a job worker (needs OUTREACH_REDIS_URL). Start as many as needed."""
    from outreach.worker import run_worker

    asyncio.run(run_worker(max_async_tasks=concurrency, metrics_port=metrics_port))


@app.command()
def scheduler(metrics_port: MetricsPort = None) -> None:
    """Send periodic jobs to the workers (needs OUTREACH_REDIS_URL). Run exactly one."""
    from outreach.worker import run_scheduler

    asyncio.run(run_scheduler(metrics_port=metrics_port))


@app.command()
def migrate(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "heads",
) -> None:
    """Upgrade the database schema to REVISION (default: the newest)."""
    from outreach.migrations.runner import upgrade

    upgrade(get_settings().database_url, revision)
    typer.echo(f"database at {revision}")


@app.command()
def demo(
    data_dir: Annotated[
        Path, typer.Option(help="Folder for the demo's database, files and outbox; emptied first.")
    ] = Path("var/demo"),
    database_url: Annotated[
        str | None,
        typer.Option(help="An empty database to use instead of SQLite in the folder."),
    ] = None,
) -> None:
    """The whole product end to end on a throw-away database: no account, no network."""
    from outreach.demo.flow import DemoFailed, run_demo

    try:
        asyncio.run(run_demo(data_dir, database_url=database_url))
    except DemoFailed as exc:
        typer.echo(f"demo failed: {exc}", err=True)
        raise typer.Exit(code=1) from exc


def main() -> None:
    app()


credits_app = typer.Typer(help="Operator tools for credits.", no_args_is_help=True)
app.add_typer(credits_app, name="credits")


async def _with_session(action: Callable[[AsyncSession], Awaitable[str]]) -> str:
    from outreach.kit.db import Database

    settings = get_settings()
    database = Database.from_settings(settings)
    try:
        async with database.session() as session:
            return await action(session)
    finally:
        await database.dispose()


def _fail(exc: AppError) -> NoReturn:
    typer.echo(f"error: {exc.detail or exc.title}", err=True)
    raise typer.Exit(code=1)


@app.command("create-admin")
def create_admin(email: Annotated[str, typer.Argument(help="The user's email address.")]) -> None:
    """Make an existing user (signed in at least once) an administrator."""
    from outreach.auth.service import auth_service
    from outreach.models import UserRole

    async def promote(session: AsyncSession) -> str:
        user = await auth_service.get_user_by_email(session, email)
        await auth_service.set_role(session, user=user, role=UserRole.admin, actor_id=None)
        return f"{user.email} is now an admin"

    try:
        typer.echo(asyncio.run(_with_session(promote)))
    except AppError as exc:
        _fail(exc)


@credits_app.command("grant")
def grant_credits(
    email: Annotated[str, typer.Argument(help="The user's email address.")],
    amount: Annotated[
        int, typer.Argument(help="Credits to add; negative to deduct (put -- before it).")
    ],
    reason: Annotated[str, typer.Option(help="Why (kept in the ledger and audit log).")],
    idempotency_key: Annotated[
        str | None, typer.Option(help="Makes re-running the same grant safe.")
    ] = None,
) -> None:
    """Grant (or with a negative AMOUNT deduct) credits through the ledger."""
    from outreach.admin.service import admin_service
    from outreach.auth.service import auth_service

    key = f"cli:{idempotency_key or uuid.uuid4()}"

    async def grant(session: AsyncSession) -> str:
        user = await auth_service.get_user_by_email(session, email)
        entry = await admin_service.grant_credits(
            session, user=user, delta=amount, reason=reason, actor_id=None, idempotency_key=key
        )
        return f"{user.email}: {entry.delta:+d} credits, balance {entry.balance_after}"

    try:
        typer.echo(asyncio.run(_with_session(grant)))
    except AppError as exc:
        _fail(exc)


@app.command("rotate-keys")
def rotate_keys() -> None:
    """Re-encrypt stored mailbox secrets with the first key of OUTREACH_ENCRYPTION_KEYS."""
    from outreach.mailbox.service import mailbox_service

    async def rotate(session: AsyncSession) -> str:
        count = await mailbox_service.rotate_keys(session)
        return f"re-encrypted {count} secrets with the newest key"

    typer.echo(asyncio.run(_with_session(rotate)))


# -- operating without the HTTP admin API ---------------------------------------------

tick_app = typer.Typer(help="Run a periodic job once, now.", no_args_is_help=True)
app.add_typer(tick_app, name="tick")
jobs_app = typer.Typer(
    help="The failed-jobs list (dead letters), as GET/POST /v1/admin/failed-jobs.",
    no_args_is_help=True,
)
app.add_typer(jobs_app, name="jobs")


async def _with_jobs(action: Callable[[Database], Awaitable[str]]) -> str:
    """Run ``action`` as a worker would: the process's database and job broker set up
    (Redis when configured; else jobs it sends run here and are waited for)."""
    from outreach import tasks  # noqa: F401 - registers every job
    from outreach.kit import jobs
    from outreach.kit.db import Database, set_database

    settings = get_settings()
    database = Database.from_settings(settings)
    set_database(database)
    broker = jobs.create_broker(settings)
    jobs.set_broker(broker)
    await broker.startup()
    try:
        return await action(database)
    finally:
        wait_all = getattr(broker, "wait_all", None)
        if wait_all is not None:
            await wait_all()
        await broker.shutdown()
        jobs.set_broker(None)
        set_database(None)
        await database.dispose()


@tick_app.command("send")
def tick_send() -> None:
    """Run one send tick now (what a worker does every 30 s) and print what it did.
    Safe beside running workers: emails are claimed under a lease, never twice."""
    from outreach.campaign.operations import campaign_operations
    from outreach.campaign.sending import send_due_emails
    from outreach.kit.clock import utcnow

    async def tick(database: Database) -> str:
        started = utcnow()
        claimed = await send_due_emails(database)
        async with database.session() as session:
            changed = await campaign_operations.email_statuses_since(session, since=started)
        outcome = ", ".join(f"{status} {count}" for status, count in sorted(changed.items()))
        return f"claimed {claimed} emails" + (f"; now {outcome}" if outcome else "")

    typer.echo(asyncio.run(_with_jobs(tick)))


@jobs_app.command("list")
def list_failed_jobs(
    task: Annotated[str | None, typer.Option(help="Only this task name.")] = None,
    retried: Annotated[
        bool | None, typer.Option("--retried/--not-retried", help="Only retried (or not) ones.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=200, help="At most this many.")] = 50,
) -> None:
    """Jobs and sends that failed their last attempt, newest first (audited)."""
    from outreach.admin.service import admin_service
    from outreach.kit.pagination import Pagination

    key = get_settings().secret_key.get_secret_value().encode()

    async def listing(session: AsyncSession) -> str:
        rows, _ = await admin_service.list_failed_jobs(
            session,
            actor_id=None,
            pagination=Pagination(limit=limit, after=None, signing_key=key),
            task_name=task,
            retried=retried,
        )
        lines = [
            f"{row.id}  {row.created_at:%Y-%m-%d %H:%M}  {row.task_name}  "
            f"attempts={row.attempts}  "
            f"{'retried ' + f'{row.retried_at:%Y-%m-%d %H:%M}' if row.retried_at else 'open'}  "
            f"{row.error.splitlines()[0][:120] if row.error else ''}"
            for row in rows
        ]
        return "\n".join(lines) or "no failed jobs"

    typer.echo(asyncio.run(_with_session(listing)))


@jobs_app.command("retry")
def retry_failed_job(
    failed_job_id: Annotated[uuid.UUID, typer.Argument(help="The id `outreach jobs list` shows.")],
) -> None:
    """Retry a failed job once: the job is sent again with its arguments; a failed send
    is planned again and its credit charged. Retrying it twice changes nothing."""
    from outreach.admin.service import admin_service

    async def retry(database: Database) -> str:
        async with database.session() as session:
            result = await admin_service.retry_failed_job(
                session, failed_job_id=failed_job_id, actor_id=None
            )
        charged = f", {result.charged_credits} credit charged" if result.charged_credits else ""
        return f"{result.failed_job.task_name}: {result.action.replace('_', ' ')}{charged}"

    try:
        typer.echo(asyncio.run(_with_jobs(retry)))
    except AppError as exc:
        _fail(exc)
