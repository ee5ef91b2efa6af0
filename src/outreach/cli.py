"""The ``outreach`` command: serve, worker, scheduler, migrate, and operator tools."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from sqlalchemy.ext.asyncio import AsyncSession

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
