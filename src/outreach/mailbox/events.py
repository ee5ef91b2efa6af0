"""The mailbox's in-process hooks: mailbox unavailable, and incoming messages.

When a mailbox is revoked (``invalid_grant``, a 401 after a refresh, the user
disconnecting) every handler runs inside the same transaction as the status
change, so "mailbox revoked" and, say, "its campaigns paused" commit together::

    from outreach.mailbox.events import MailboxUnavailableEvent, on_mailbox_unavailable

    async def pause_campaigns(session: AsyncSession, event: MailboxUnavailableEvent) -> None:
        ...

    on_mailbox_unavailable(pause_campaigns)   # once, at import time

The reply check (``inbox.py``) works the same way: the campaign domain says which
Gmail threads are its own (``tracks_threads``) and reacts to what arrives in them
(``on_inbox_message``), in the check's transaction, so the mailbox never imports it.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from outreach.models import EmailEventKind, MailboxStatus


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


# -- what the reply check finds ---------------------------------------------------------


@dataclass(frozen=True)
class InboxMessageEvent:
    """A message that arrived in one of our threads (or names one of our messages),
    classified: ``replied``, ``auto_reply`` or ``bounced``. The campaign domain matches it
    to its email by ``thread_id`` and the Message-IDs it references."""

    mailbox_id: uuid.UUID
    user_id: uuid.UUID
    kind: EmailEventKind
    gmail_message_id: str
    thread_id: str
    from_address: str
    referenced_message_ids: tuple[str, ...]
    failed_recipients: tuple[str, ...]
    received_at: datetime
    detail: str


InboxMessageHandler = Callable[[AsyncSession, InboxMessageEvent], Awaitable[None]]
# Which of these Gmail thread ids (None: all) of the mailbox are ours to watch.
TrackedThreads = Callable[[AsyncSession, uuid.UUID, Collection[str] | None], Awaitable[set[str]]]
# Which of these mailboxes have any thread to watch (one query for all of them).
WatchedMailboxes = Callable[[AsyncSession, Collection[uuid.UUID]], Awaitable[set[uuid.UUID]]]
_inbox_handlers: list[InboxMessageHandler] = []
_thread_lookups: list[TrackedThreads] = []
_mailbox_lookups: list[WatchedMailboxes] = []


def on_inbox_message(handler: InboxMessageHandler) -> InboxMessageHandler:
    """Subscribe ``handler`` to classified incoming messages (idempotent)."""
    if handler not in _inbox_handlers:
        _inbox_handlers.append(handler)
    return handler


def tracks_threads(lookup: TrackedThreads) -> TrackedThreads:
    """Register a source of thread ids worth reading (idempotent)."""
    if lookup not in _thread_lookups:
        _thread_lookups.append(lookup)
    return lookup


def watches_mailboxes(lookup: WatchedMailboxes) -> WatchedMailboxes:
    """Register a source of the mailboxes that have threads worth reading (idempotent);
    it must agree with the ``tracks_threads`` lookup of the same domain."""
    if lookup not in _mailbox_lookups:
        _mailbox_lookups.append(lookup)
    return lookup


async def watched_mailboxes(
    session: AsyncSession, mailbox_ids: Collection[uuid.UUID]
) -> set[uuid.UUID]:
    found: set[uuid.UUID] = set()
    for lookup in list(_mailbox_lookups):
        found |= await lookup(session, mailbox_ids)
    return found


async def tracked_threads(
    session: AsyncSession, mailbox_id: uuid.UUID, thread_ids: Collection[str] | None
) -> set[str]:
    found: set[str] = set()
    for lookup in list(_thread_lookups):
        found |= await lookup(session, mailbox_id, thread_ids)
    return found


async def emit_inbox_message(session: AsyncSession, event: InboxMessageEvent) -> None:
    for handler in list(_inbox_handlers):
        await handler(session, event)
