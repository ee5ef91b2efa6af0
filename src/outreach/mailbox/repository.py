"""All SQL of the mailbox domain; per-user scoping lives in ``get_readable_statement``."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.mailbox.oauth import GMAIL_METADATA
from outreach.models import Mailbox, MailboxMode, MailboxProvider, MailboxStatus, User


def get_readable_statement(user: User) -> Select[Any]:
    return select(Mailbox).where(Mailbox.user_id == user.id)


async def get_for_user(session: AsyncSession, user: User, mailbox_id: uuid.UUID) -> Mailbox | None:
    mailbox: Mailbox | None = await session.scalar(
        get_readable_statement(user).where(Mailbox.id == mailbox_id)
    )
    return mailbox


async def get_by_address(
    session: AsyncSession, user_id: uuid.UUID, address: str, provider: MailboxProvider
) -> Mailbox | None:
    return await session.scalar(
        select(Mailbox).where(
            Mailbox.user_id == user_id, Mailbox.address == address, Mailbox.provider == provider
        )
    )


async def lock(session: AsyncSession, mailbox_id: uuid.UUID) -> Mailbox | None:
    """The row, reloaded and locked (``FOR UPDATE`` on PostgreSQL; SQLite's
    ``BEGIN IMMEDIATE`` already serialises writers) until the transaction ends."""
    return await session.scalar(
        select(Mailbox)
        .where(Mailbox.id == mailbox_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


async def has_active(session: AsyncSession, user_id: uuid.UUID) -> bool:
    found = await session.scalar(
        select(Mailbox.id)
        .where(Mailbox.user_id == user_id, Mailbox.status == MailboxStatus.active)
        .limit(1)
    )
    return found is not None


async def list_active(session: AsyncSession, user_id: uuid.UUID) -> list[Mailbox]:
    rows = await session.scalars(
        select(Mailbox)
        .where(Mailbox.user_id == user_id, Mailbox.status == MailboxStatus.active)
        .order_by(Mailbox.created_at)
    )
    return list(rows.all())


async def list_with_problems(session: AsyncSession, user_id: uuid.UUID) -> list[Mailbox]:
    rows = await session.scalars(
        select(Mailbox)
        .where(Mailbox.user_id == user_id, Mailbox.status != MailboxStatus.active)
        .order_by(Mailbox.created_at)
    )
    return list(rows.all())


async def with_secrets(session: AsyncSession) -> list[Mailbox]:
    rows = await session.scalars(
        select(Mailbox)
        .where(
            (Mailbox.refresh_token_encrypted.is_not(None))
            | (Mailbox.access_token_encrypted.is_not(None))
            | (Mailbox.smtp_password_encrypted.is_not(None))
        )
        .with_for_update()
    )
    return list(rows.all())


async def list_readable_gmail(session: AsyncSession) -> list[Mailbox]:
    """Every active full-mode Gmail mailbox (the reply check filters on the scope)."""
    rows = await session.scalars(
        select(Mailbox)
        .where(
            Mailbox.provider == MailboxProvider.gmail,
            Mailbox.mode == MailboxMode.full,
            Mailbox.status == MailboxStatus.active,
        )
        .order_by(Mailbox.id)
    )
    return [m for m in rows.all() if GMAIL_METADATA in (m.granted_scopes or [])]
