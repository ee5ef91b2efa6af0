"""Operator commands against a real (committed) database."""

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from outreach.cli import app
from outreach.config import Settings, use_settings
from outreach.credits.service import credit_service
from outreach.kit.db import Database
from outreach.migrations.runner import upgrade
from outreach.models import UserRole
from tests.conftest import create_user


@pytest.fixture
def cli_settings(settings: Settings, tmp_path: Path) -> Settings:
    """A database of its own: the CLI opens and commits its own connections."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    upgrade(url)
    cli = settings.model_copy(update={"database_url": url})
    use_settings(cli)
    yield cli
    use_settings(settings)


def run(coroutine):  # type: ignore[no-untyped-def]
    return asyncio.get_event_loop_policy().new_event_loop().run_until_complete(coroutine)


async def _seed(url: str) -> None:
    database = Database.from_settings(Settings(_env_file=None, database_url=url))
    async with database.session() as session:
        await create_user(session, "ops@example.com", balance=5)
    await database.dispose()


async def _state(url: str) -> tuple[int, UserRole]:
    from outreach.auth.service import auth_service

    database = Database.from_settings(Settings(_env_file=None, database_url=url))
    async with database.session() as session:
        user = await auth_service.get_user_by_email(session, "ops@example.com")
        balance = await credit_service.get_balance(session, user_id=user.id)
        role = user.role
    await database.dispose()
    return balance, role


def test_create_admin_and_grant_credits(cli_settings: Settings) -> None:
    runner = CliRunner()
    run(_seed(cli_settings.database_url))
    promoted = runner.invoke(app, ["create-admin", "OPS@example.com"])
    assert promoted.exit_code == 0, promoted.output
    granted = runner.invoke(app, ["credits", "grant", "ops@example.com", "10", "--reason", "beta"])
    assert granted.exit_code == 0, granted.output
    assert "balance 15" in granted.output
    again = runner.invoke(
        app,
        ["credits", "grant", "ops@example.com", "10", "--reason", "beta", "--idempotency-key", "x"],
    )
    replay = runner.invoke(
        app,
        ["credits", "grant", "ops@example.com", "10", "--reason", "beta", "--idempotency-key", "x"],
    )
    assert again.exit_code == replay.exit_code == 0
    assert run(_state(cli_settings.database_url)) == (25, UserRole.admin)


def test_errors_are_clear(cli_settings: Settings) -> None:
    runner = CliRunner()
    run(_seed(cli_settings.database_url))
    missing = runner.invoke(app, ["create-admin", "nobody@example.com"])
    assert missing.exit_code == 1
    assert "no user with email nobody@example.com" in missing.output
    overdraw = runner.invoke(
        app, ["credits", "grant", "--reason", "x", "--", "ops@example.com", "-99"]
    )
    assert overdraw.exit_code == 1
    assert "needs 99 credits" in overdraw.output
