"""What a template can refer to: recipient fields, a list's own columns, the sender."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.models import Recipient, User
from outreach.recipient.lists import list_service
from outreach.template.language import RECIPIENT_FIELDS, SENDER_FIELDS, usable_name
from outreach.template.rendering import variable_name
from outreach.template.service import SAMPLE_RECIPIENT

ListColumns = Callable[[AsyncSession, User, uuid.UUID], Awaitable[list[str]]]
_list_columns: list[ListColumns] = []


def register_list_columns(source: ListColumns) -> None:
    """The recipients domain tells us a list's custom columns (404 if not the user's)."""
    _list_columns.append(source)


async def available_variables(
    session: AsyncSession, *, user: User, list_id: uuid.UUID | None
) -> list[dict[str, Any]]:
    """Every name a template may use, as it is written in the template: recipient
    fields, the list's own columns, then each sender field as ``sender.<field>``.
    The save-time check accepts exactly these (the same vocabulary)."""
    found: list[dict[str, Any]] = [
        {"name": name, "source": "recipient", "example": SAMPLE_RECIPIENT.get(name)}
        for name in RECIPIENT_FIELDS
    ]
    if list_id is not None:
        for source in _list_columns:
            for column in await source(session, user, list_id):
                name = variable_name(column)
                # A column named like a Jinja word or "sender" cannot be written as {{ name }}.
                if name not in RECIPIENT_FIELDS and usable_name(name):
                    found.append({"name": name, "source": "list column", "example": None})
    found += [
        {"name": f"sender.{name}", "source": "sender", "example": None} for name in SENDER_FIELDS
    ]
    return found


async def _recipient_list_columns(
    session: AsyncSession, user: User, list_id: uuid.UUID
) -> list[str]:
    """The custom columns a list's recipients carry (404 when the list is not the user's)."""
    await list_service.get_list(session, user_id=user.id, list_id=list_id)
    rows = await session.scalars(
        select(Recipient.custom_fields).where(Recipient.list_id == list_id).limit(500)
    )
    columns: list[str] = []
    for fields in rows:
        columns += [key for key in fields if key not in columns]
    return columns


register_list_columns(_recipient_list_columns)
