"""The in-process mailbox-unavailable hook.

When a mailbox is revoked (``invalid_grant``, a 401 after a refresh, the user
disconnecting) every handler runs inside the same transaction as the status
change, so "mailbox revoked" and, say, "its campaigns paused" commit together::

    from outreach.mailbox.events import MailboxUnavailableEvent, on_mailbox_unavailable

    async def pause_campaigns(session: AsyncSession, event: MailboxUnavailableEvent) -> None:
        ...

    on_mailbox_unavailable(pause_campaigns)   # once, at import time
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from outreach.models import MailboxStatus


@dataclass(frozen=True)
class MailboxUnavailableEvent:
    mailbox_id: uuid.UUID
    user_id: uuid.UUID
    status: MailboxStatus
    reason: str


MailboxUnavailableHandler = Callable[[AsyncSession, MailboxUnavailableEvent], Awaitable[None]]
_handlers: list[MailboxUnavailableHandler] = []


def on_mailbox_unavailable(handler: MailboxUnavailableHandler) -> MailboxUnavailableHandler:
    """Subscribe ``handler`` (idempotent: subscribing twice runs it once)."""
    if handler not in _handlers:
        _handlers.append(handler)
    return handler


def remove_mailbox_unavailable_handler(handler: MailboxUnavailableHandler) -> None:
    if handler in _handlers:
        _handlers.remove(handler)


async def emit_mailbox_unavailable(session: AsyncSession, event: MailboxUnavailableEvent) -> None:
    for handler in list(_handlers):
        await handler(session, event)
