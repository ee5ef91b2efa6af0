"""Campaign fixtures: an outbox mailbox, a ready list, a template, a user with credits."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.config import Settings, use_settings
from outreach.models import Mailbox, MailboxProvider, MailboxStatus, Recipient, User
from outreach.models.recipient_list import ListStatus, RecipientList
from outreach.template.schemas import TemplateCreate
from outreach.template.service import template_service


@pytest.fixture
def outbox_settings(settings: Settings, tmp_path: Path) -> Iterator[Settings]:
    changed = settings.model_copy(
        update={"outbox_path": tmp_path / "outbox", "allow_outbox_mailboxes": True}
    )
    use_settings(changed)
    yield changed
    use_settings(settings)


async def make_outbox_mailbox(
    session: AsyncSession,
    user: User,
    *,
    address: str = "me@example.com",
    cap: int = 250,
    timezone: str = "Asia/Kolkata",
) -> Mailbox:
    mailbox = Mailbox(
        user_id=user.id,
        provider=MailboxProvider.outbox,
        address=address,
        status=MailboxStatus.active,
        daily_cap=cap,
        timezone=timezone,
        granted_scopes=[],
    )
    session.add(mailbox)
    await session.flush()
    return mailbox


async def make_list(
    session: AsyncSession,
    user: User,
    rows: list[dict[str, Any]],
    *,
    status: ListStatus = ListStatus.ready,
) -> RecipientList:
    recipient_list = RecipientList(user_id=user.id, name="Targets", status=status)
    session.add(recipient_list)
    await session.flush()
    for position, row in enumerate(rows, start=2):
        session.add(
            Recipient(
                list_id=recipient_list.id,
                user_id=user.id,
                position=position,
                email=row["email"],
                first_name=row.get("first_name"),
                company=row.get("company"),
                title=row.get("title"),
                timezone=row.get("timezone"),
                custom_fields=row.get("custom_fields", {}),
                verification_status=row.get("verification_status", "deliverable"),
            )
        )
    await session.flush()
    return recipient_list


async def make_template(session: AsyncSession, user: User, **overrides: str) -> uuid.UUID:
    data = {
        "name": "Intro",
        "subject": "Hello {{ first_name | default('there') }}",
        "body_text": "Hi {{ first_name | default('there') }}, I admire {{ company }}.",
        **overrides,
    }
    template, _ = await template_service.create(session, user=user, data=TemplateCreate(**data))
    return template.id
