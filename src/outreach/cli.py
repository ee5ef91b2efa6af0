"""The ``outreach`` command: serve, worker, scheduler, migrate, and operator tools."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from outreach.config import check_settings, get_settings

app = typer.Typer(
    help="Outreach: personalised cold email from your own Gmail.", no_args_is_help=True
)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    reload: Annotated[bool, typer.Option(help="Restart on code changes (development).")] = False,
) -> None:
    """Run the HTTP API (and, without Redis, the in-process jobs and scheduler)."""
    import uvicorn

    settings = get_settings()
    check_settings(settings)
    uvicorn.run(
        "outreach.app:create_app",
        factory=True,
        host=host,
        port=port,
        reload=reload,
        access_log=False,
        proxy_headers=True,
    )


@app.command()
def worker(
    concurrency: Annotated[int, typer.Option(help="Jobs run at the same time.")] = 50,
) -> None:
    """Run a job worker (needs OUTREACH_REDIS_URL). Start as many as needed."""
    from outreach.worker import run_worker

    asyncio.run(run_worker(max_async_tasks=concurrency))


@app.command()
def scheduler() -> None:
    """Send periodic jobs to the workers (needs OUTREACH_REDIS_URL). Run exactly one."""
    from outreach.worker import run_scheduler

    asyncio.run(run_scheduler())


@app.command()
def migrate(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
) -> None:
    """Upgrade the database schema to REVISION (default: the newest)."""
    from outreach.migrations.runner import upgrade

    upgrade(get_settings().database_url, revision)
    typer.echo(f"database at {revision}")


def main() -> None:
    app()
