"""What a template can refer to: recipient fields, a list's own columns, the sender."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from outreach.models import User
from outreach.template.rendering import SENDER_VARIABLES, STANDARD_VARIABLES, variable_name
from outreach.template.service import SAMPLE_RECIPIENT

ListColumns = Callable[[AsyncSession, User, uuid.UUID], Awaitable[list[str]]]
_list_columns: list[ListColumns] = []


def register_list_columns(source: ListColumns) -> None:
    """The recipients domain tells us a list's custom columns (404 if not the user's)."""
    _list_columns.append(source)


async def available_variables(
    session: AsyncSession, *, user: User, list_id: uuid.UUID | None
) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = [
        {"name": name, "source": "recipient", "example": SAMPLE_RECIPIENT.get(name)}
        for name in STANDARD_VARIABLES
    ]
    if list_id is not None:
        for source in _list_columns:
            for column in await source(session, user, list_id):
                name = variable_name(column)
                if name not in STANDARD_VARIABLES:
                    found.append({"name": name, "source": "list column", "example": None})
    found += [
        {"name": f"sender.{name}", "source": "sender", "example": None} for name in SENDER_VARIABLES
    ]
    return found
