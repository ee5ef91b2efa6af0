"""``outreach rotate-keys`` against a real (committed) database."""

from __future__ import annotations

import asyncio
from pathlib import Path

from cryptography.fernet import Fernet
from pydantic import SecretStr
from typer.testing import CliRunner

from outreach.cli import app
from outreach.config import Settings, use_settings
from outreach.kit.crypto import encrypt_secret
from outreach.kit.db import Database
from outreach.migrations.runner import upgrade
from outreach.models import Mailbox, MailboxProvider, SmtpSecurity
from tests.conftest import create_user


async def _seed(settings: Settings) -> None:
    database = Database.from_settings(settings)
    async with database.session() as session:
        user = await create_user(session, "ops@example.com")
        session.add(
            Mailbox(
                user_id=user.id,
                provider=MailboxProvider.smtp,
                address="ops@example.com",
                smtp_host="smtp.example.com",
                smtp_port=587,
                smtp_security=SmtpSecurity.starttls,
                smtp_username="ops",
                smtp_password_encrypted=encrypt_secret("s3cret", settings=settings),
            )
        )
    await database.dispose()


async def _stored_password(settings: Settings) -> str:
    database = Database.from_settings(settings)
    async with database.session() as session:
        from sqlalchemy import select

        value = await session.scalar(select(Mailbox.smtp_password_encrypted))
    await database.dispose()
    return value or ""


def test_rotate_keys_reencrypts_with_the_newest_key(
    settings: Settings, mailbox_settings: Settings, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    upgrade(url)
    old, new = Fernet.generate_key(), Fernet.generate_key()
    before = mailbox_settings.model_copy(
        update={"database_url": url, "encryption_keys": [SecretStr(old.decode())]}
    )
    after = before.model_copy(
        update={"encryption_keys": [SecretStr(new.decode()), SecretStr(old.decode())]}
    )
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(_seed(before))
        use_settings(after)
        result = CliRunner().invoke(app, ["rotate-keys"])
        assert result.exit_code == 0, result.output
        assert "re-encrypted 1 secrets" in result.output
        stored = loop.run_until_complete(_stored_password(after))
    finally:
        loop.close()
        use_settings(mailbox_settings)
    assert Fernet(new).decrypt(stored.encode()) == b"s3cret"
