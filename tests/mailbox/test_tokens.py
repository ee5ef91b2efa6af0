"""Access tokens: encrypted at rest, refreshed once under concurrency, revocation, key rotation."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.config import Settings, use_settings
from outreach.kit.crypto import SecretDecryptionFailed, decrypt_secret
from outreach.kit.db import Database
from outreach.mailbox.providers import MailboxRevoked
from outreach.mailbox.service import mailbox_service
from outreach.models import AuditLog, Mailbox, MailboxStatus, User
from tests.conftest import create_user, sign_in
from tests.fakes.google import FakeGoogle
from tests.mailbox.conftest import gmail_mailbox


async def _stale_mailbox(database: Database, fake_google: FakeGoogle) -> uuid.UUID:
    async with database.session() as session:
        user = await create_user(session, "asha@example.com")
        mailbox, _ = await gmail_mailbox(session, fake_google, user)
        mailbox.access_token_expires_at = mailbox.created_at  # expired
        return mailbox.id


async def test_two_workers_refresh_once(
    committing_database: Database, fake_google: FakeGoogle
) -> None:
    mailbox_id = await _stale_mailbox(committing_database, fake_google)
    fake_google.oauth.token_delay = 0.2  # widen the window for a race

    async def worker() -> str:
        async with committing_database.session() as session:
            mailbox = await session.get_one(Mailbox, mailbox_id)
            return await mailbox_service.access_token(session, mailbox)

    first, second = await asyncio.gather(worker(), worker())
    assert first == second
    assert fake_google.oauth.refresh_calls == 1
    async with committing_database.session() as session:
        mailbox = await session.get_one(Mailbox, mailbox_id)
        assert decrypt_secret(mailbox.access_token_encrypted or "") == first


async def test_invalid_grant_marks_revoked_audits_and_shows_in_me(
    client: httpx.AsyncClient, session: AsyncSession, fake_google: FakeGoogle, database: Database
) -> None:
    me = await sign_in(client, "asha@example.com")
    async with database.session() as s:
        user = await s.get_one(User, uuid.UUID(me["id"]))
        mailbox, grant = await gmail_mailbox(s, fake_google, user)
        mailbox.access_token_expires_at = mailbox.created_at
    grant.revoked = True
    verified = await client.post("/v1/gmail/verify", json={"mailbox_id": str(mailbox.id)})
    assert verified.status_code == 200
    assert verified.json()["status"] == "revoked"
    assert "refresh token" in verified.json()["status_reason"]
    body = (await client.get("/v1/auth/me")).json()
    assert body["mailbox_problems"][0]["mailbox_id"] == str(mailbox.id)
    audit = await session.scalar(select(AuditLog).where(AuditLog.action == "mailbox.revoked"))
    assert audit is not None
    assert audit.target_id == str(mailbox.id)
    stored = await session.get_one(Mailbox, mailbox.id)
    assert stored.refresh_token_encrypted is None


async def test_revoked_mailbox_gives_no_provider(
    session: AsyncSession, fake_google: FakeGoogle
) -> None:
    user = await create_user(session, "asha@example.com")
    mailbox, _ = await gmail_mailbox(session, fake_google, user)
    await mailbox_service.mark_unavailable(
        session, mailbox, status=MailboxStatus.revoked, reason="test"
    )
    with pytest.raises(MailboxRevoked):
        await mailbox_service.provider_for(session, mailbox)


async def test_secrets_are_encrypted_and_rotate_to_the_new_key(
    session: AsyncSession, fake_google: FakeGoogle, mailbox_settings: Settings
) -> None:
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    use_settings(mailbox_settings.model_copy(update={"encryption_keys": [SecretStr(old_key)]}))
    user = await create_user(session, "asha@example.com")
    mailbox, grant = await gmail_mailbox(session, fake_google, user)
    assert grant.refresh_token not in (mailbox.refresh_token_encrypted or "")
    assert Fernet(old_key.encode()).decrypt(mailbox.refresh_token_encrypted.encode()).decode() == (
        grant.refresh_token
    )
    rotated = mailbox_settings.model_copy(
        update={"encryption_keys": [SecretStr(new_key), SecretStr(old_key)]}
    )
    use_settings(rotated)
    assert await mailbox_service.rotate_keys(session) == 2  # refresh + access token
    assert Fernet(new_key.encode()).decrypt(mailbox.refresh_token_encrypted.encode()).decode() == (
        grant.refresh_token
    )
    only_old = mailbox_settings.model_copy(update={"encryption_keys": [SecretStr(old_key)]})
    with pytest.raises(SecretDecryptionFailed):
        decrypt_secret(mailbox.refresh_token_encrypted or "", settings=only_old)
