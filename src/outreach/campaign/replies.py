"""What came back for campaign emails: replies, auto-replies, bounces, unsubscribes.

Each is stored once as an ``EmailEvent`` on the email it answers (the latest one sent
in the thread, or for a bounce the one its Message-ID names). A reply, a bounce or an
unsubscribe (and an auto-reply when the campaign asks) stops the recipient's sequence:
every later email of the campaign to that address still unsent is cancelled and
refunded, in the same transaction as the event, under row locks, so the send tick can
no longer claim it. A hard bounce also suppresses the address for that sender.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.campaign.service import campaign_service
from outreach.config import get_settings
from outreach.kit import metrics
from outreach.kit.clock import utcnow
from outreach.kit.db import IN_LIST_MAX, dialect_insert, in_batches
from outreach.kit.jobs import enqueue_after_commit
from outreach.mailbox.events import (
    InboxMessageEvent,
    on_inbox_message,
    tracks_threads,
    watches_mailboxes,
)
from outreach.models import EmailEvent, EmailEventKind, EmailEventSource, SuppressionReason
from outreach.models.campaign import Campaign, EmailStatus, ScheduledEmail
from outreach.recipient.suppression import suppression_service

UNSENT = (
    EmailStatus.waiting,
    EmailStatus.pending,
    EmailStatus.ready,
    EmailStatus.awaiting_approval,
)
STOPPING = (EmailEventKind.replied, EmailEventKind.bounced, EmailEventKind.unsubscribed)


async def record_event(
    session: AsyncSession,
    *,
    email: ScheduledEmail,
    kind: EmailEventKind,
    source: EmailEventSource,
    dedupe_key: str,
    detail: str | None = None,
    occurred_at: datetime | None = None,
) -> int | None:
    """Store the event once and react to it; returns how many follow-ups it cancelled
    (None when it was already stored).

    A stopping event locks the recipient's unsent emails *before* it is written, the
    same rows the send tick's claim locks (``FOR UPDATE SKIP LOCKED``): a follow-up the
    claim took first is ``sending`` and goes out (the answer came after it was claimed);
    any other is cancelled in this transaction, and the claim skips it until then."""
    campaign = await session.get(Campaign, email.campaign_id)
    stops = kind in STOPPING or (
        kind == EmailEventKind.auto_reply and campaign is not None and campaign.stop_on_auto_reply
    )
    later = await _lock_unsent(session, email) if stops else []
    inserted = await session.execute(
        dialect_insert(session)(EmailEvent)
        .values(
            id=uuid.uuid4(),
            created_at=utcnow(),
            user_id=email.user_id,
            campaign_id=email.campaign_id,
            scheduled_email_id=email.id,
            recipient_address=email.to_address,
            kind=kind,
            source=source,
            dedupe_key=dedupe_key[:200],
            occurred_at=occurred_at or utcnow(),
            detail=(detail or "")[:500] or None,
        )
        .on_conflict_do_nothing(index_elements=["scheduled_email_id", "kind", "dedupe_key"])
    )
    if not getattr(inserted, "rowcount", 0):
        return None
    metrics.count_after_commit(session, metrics.EMAIL_EVENTS.labels(kind=kind.value))
    if kind == EmailEventKind.bounced:
        await suppression_service.add(
            session,
            user_id=email.user_id,
            value=email.to_address,
            reason=SuppressionReason.bounced,
            source=f"campaign:{email.campaign_id}",
        )
    return await cancel_stopped(session, later) if stops else 0


async def _lock_unsent(session: AsyncSession, email: ScheduledEmail) -> list[ScheduledEmail]:
    """The campaign's unsent emails to ``email``'s recipient, locked (waiting for a claim
    that holds one: once it commits, that one is ``sending`` and no longer listed)."""
    rows = await session.scalars(
        select(ScheduledEmail)
        .where(
            ScheduledEmail.campaign_id == email.campaign_id,
            ScheduledEmail.to_address == email.to_address,
            ScheduledEmail.status.in_(UNSENT),
        )
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return list(rows.all())


async def cancel_stopped(session: AsyncSession, later: list[ScheduledEmail]) -> int:
    """Cancel and refund these locked emails of a stopped sequence (those still unsent);
    their drafts are deleted after the commit. Returns how many were cancelled."""
    later = [e for e in later if e.status in UNSENT]
    if not later:
        return 0
    for followup in later:
        await campaign_service.refund_email(session, email=followup, status=EmailStatus.cancelled)
        followup.last_error = "the sequence stopped: the recipient replied, bounced or left"
    drafts = [e.draft_id for e in later if e.draft_id]
    if drafts:
        enqueue_after_commit(
            session, "campaign.delete_drafts", mailbox_id=str(later[0].mailbox_id), draft_ids=drafts
        )
    await session.flush()
    return len(later)


async def latest_sent_to(
    session: AsyncSession, *, campaign_id: uuid.UUID, address: str
) -> ScheduledEmail | None:
    """The last email of the campaign that went out to ``address``."""
    return await session.scalar(
        select(ScheduledEmail)
        .where(
            ScheduledEmail.campaign_id == campaign_id,
            ScheduledEmail.to_address == address,
            ScheduledEmail.status == EmailStatus.sent,
        )
        .order_by(ScheduledEmail.step.desc())
        .limit(1)
    )


# -- the mailbox's reply check ------------------------------------------------------------


def _watched() -> tuple[ColumnElement[bool], ...]:
    """Sent emails whose Gmail thread is still watched (the last ``reply_tracking_days``)."""
    since = utcnow() - timedelta(days=get_settings().reply_tracking_days)
    return (
        ScheduledEmail.status == EmailStatus.sent,
        ScheduledEmail.thread_id.is_not(None),
        ScheduledEmail.sent_at >= since,
    )


@tracks_threads
async def campaign_threads(
    session: AsyncSession, mailbox_id: uuid.UUID, thread_ids: Collection[str] | None
) -> set[str]:
    """Gmail threads of emails sent from the mailbox in the last ``reply_tracking_days``."""
    statement = (
        select(ScheduledEmail.thread_id)
        .distinct()
        .where(ScheduledEmail.mailbox_id == mailbox_id, *_watched())
    )
    if thread_ids is None:
        return {t for t in await session.scalars(statement) if t}
    found: set[str] = set()
    # A history read after days away can name more threads than a statement binds.
    for batch in in_batches(thread_ids):
        found.update(
            t
            for t in await session.scalars(statement.where(ScheduledEmail.thread_id.in_(batch)))
            if t
        )
    return found


@watches_mailboxes
async def campaign_mailboxes(
    session: AsyncSession, mailbox_ids: Collection[uuid.UUID]
) -> set[uuid.UUID]:
    """Which of these mailboxes sent an email whose thread is still watched: one query
    for all of them, rather than every mailbox's threads loaded to see if it has one."""
    if not mailbox_ids:
        return set()
    statement = (
        select(ScheduledEmail.mailbox_id)
        .distinct()
        .where(ScheduledEmail.mailbox_id.in_(list(mailbox_ids)), *_watched())
    )
    return set(await session.scalars(statement))


async def _email_for(session: AsyncSession, event: InboxMessageEvent) -> ScheduledEmail | None:
    sent = select(ScheduledEmail).where(
        ScheduledEmail.mailbox_id == event.mailbox_id, ScheduledEmail.status == EmailStatus.sent
    )
    if event.kind == EmailEventKind.bounced:
        # The bounce's own References may be as long as its sender made them.
        for batch in in_batches(event.referenced_message_ids):
            named = await session.scalar(sent.where(ScheduledEmail.rfc822_message_id.in_(batch)))
            if named is not None:
                return named
    in_thread = sent.where(ScheduledEmail.thread_id == event.thread_id)
    if event.kind == EmailEventKind.bounced and event.failed_recipients:
        failed = event.failed_recipients[:IN_LIST_MAX]  # a bounce names one or a few
        in_thread = in_thread.where(ScheduledEmail.to_address.in_(failed))
    return await session.scalar(in_thread.order_by(ScheduledEmail.step.desc()).limit(1))


@on_inbox_message
async def record_inbox_message(session: AsyncSession, event: InboxMessageEvent) -> None:
    """A message the reply check classified: store it on its email and react."""
    email = await _email_for(session, event)
    if email is None:
        return
    await record_event(
        session,
        email=email,
        kind=event.kind,
        source=EmailEventSource.gmail,
        dedupe_key=event.gmail_message_id,
        detail=event.detail,
        occurred_at=event.received_at,
    )
