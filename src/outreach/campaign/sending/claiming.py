"""Claiming due emails under a lease, never past a mailbox's or a campaign's daily cap.

The mailbox row is locked on PostgreSQL (SQLite serialises writers), so several
workers count and claim one after the other; emails over a cap move to the next window.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, bindparam, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.campaign import replies
from outreach.campaign.sending.rules import _ACTIVE, CLAIM_BATCH, LEASE, log
from outreach.campaign.service import campaign_service
from outreach.kit import metrics
from outreach.kit.clock import utcnow
from outreach.kit.db import Database
from outreach.models import EmailEvent, Mailbox, MailboxStatus
from outreach.models.campaign import Campaign, EmailStatus, ScheduledEmail


def mailbox_day_start(mailbox: Mailbox, now: datetime) -> datetime:
    zone = ZoneInfo(mailbox.timezone)
    local_day = now.astimezone(zone).date()
    return datetime.combine(local_day, time(0), tzinfo=zone).astimezone(UTC)


# -- claiming ------------------------------------------------------------------------


# The claim's statements are built once, with their values bound per call: a tick claims
# for every mailbox in turn, and building the expressions each time cost more than
# running them.
_SENT_TODAY = (
    select(func.count())
    .select_from(ScheduledEmail)
    .where(
        ScheduledEmail.mailbox_id == bindparam("mailbox_id"),
        or_(
            ScheduledEmail.sent_at >= bindparam("day_start"),
            ScheduledEmail.status == EmailStatus.sending,
            and_(
                ScheduledEmail.status == EmailStatus.unknown,
                ScheduledEmail.updated_at >= bindparam("day_start"),
            ),
        ),
    )
)
_LOCK_MAILBOX = select(Mailbox).where(Mailbox.id == bindparam("mailbox_id")).with_for_update()
_DUE = (
    select(ScheduledEmail.id, ScheduledEmail.campaign_id, Campaign.daily_cap, ScheduledEmail.step)
    .join(Campaign, Campaign.id == ScheduledEmail.campaign_id)
    .where(
        ScheduledEmail.mailbox_id == bindparam("mailbox_id"),
        ScheduledEmail.status == EmailStatus.ready,
        ScheduledEmail.due_at <= bindparam("now"),
        or_(
            ScheduledEmail.next_attempt_at.is_(None),
            ScheduledEmail.next_attempt_at <= bindparam("now"),
        ),
        Campaign.status.in_(_ACTIVE),
    )
    .order_by(ScheduledEmail.due_at)
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True, of=ScheduledEmail)
)
_CLAIM = (
    update(ScheduledEmail)
    .where(ScheduledEmail.id.in_(bindparam("ids", expanding=True)))
    .values(
        status=EmailStatus.sending,
        lease_until=bindparam("lease_until"),
        attempts=ScheduledEmail.attempts + 1,
        updated_at=bindparam("now"),
    )
    # Nothing claimed is loaded in the session yet (the due rows are read as columns).
    .execution_options(synchronize_session=False)
)


async def _sent_today(session: AsyncSession, mailbox: Mailbox, now: datetime) -> int:
    """Sends of the mailbox's current day, plus those in flight (they may land today)."""
    count = await session.scalar(
        _SENT_TODAY, {"mailbox_id": mailbox.id, "day_start": mailbox_day_start(mailbox, now)}
    )
    return int(count or 0)


async def claim_due_emails(
    session: AsyncSession, *, mailbox_id: uuid.UUID, now: datetime
) -> list[uuid.UUID]:
    """Claim this mailbox's due emails under a lease, never past its daily cap.

    Locks the mailbox row (PostgreSQL) so two workers count and claim one after
    the other; SQLite's BEGIN IMMEDIATE does the same."""
    mailbox = await session.scalar(_LOCK_MAILBOX, {"mailbox_id": mailbox_id})
    if mailbox is None or mailbox.status != MailboxStatus.active:
        return []
    if mailbox.sending_deferred_until is not None and mailbox.sending_deferred_until > now:
        return []
    room = mailbox.daily_cap - await _sent_today(session, mailbox, now)
    if room <= 0:
        await _defer_to_next_window(session, mailbox, now)
        return []
    due = {"mailbox_id": mailbox_id, "now": now, "limit": min(room, CLAIM_BATCH)}
    rows = list((await session.execute(_DUE, due)).all())
    ids = await _within_campaign_caps(session, mailbox, rows, now)
    followups = {email_id for email_id, _, _, step in rows if step > 0}
    if followups.intersection(ids):  # a first email has no sequence to have stopped
        ids = await _without_stopped(session, ids)
    if not ids:
        return []
    await session.execute(_CLAIM, {"ids": ids, "lease_until": now + LEASE, "now": now})
    return ids


async def _without_stopped(session: AsyncSession, ids: list[uuid.UUID]) -> list[uuid.UUID]:
    """The claim never takes a follow-up whose recipient replied, bounced or unsubscribed:
    a reply recorded while the follow-up was claimed could not cancel it, and a send that
    sent nothing puts it back to ``ready``; it is cancelled and refunded here instead."""
    stopped = (
        select(EmailEvent.id)
        .where(
            EmailEvent.campaign_id == ScheduledEmail.campaign_id,
            EmailEvent.recipient_address == ScheduledEmail.to_address,
            EmailEvent.kind.in_(replies.STOPPING),
        )
        .exists()
    )
    if not ids:
        return ids
    followups = await session.scalars(
        select(ScheduledEmail).where(ScheduledEmail.id.in_(ids), ScheduledEmail.step > 0, stopped)
    )
    stopped_emails = list(followups.all())
    await replies.cancel_stopped(session, stopped_emails)
    cancelled = {email.id for email in stopped_emails}
    return [email_id for email_id in ids if email_id not in cancelled]


async def _within_campaign_caps(
    session: AsyncSession, mailbox: Mailbox, rows: list[Any], now: datetime
) -> list[uuid.UUID]:
    """Drop claims past a campaign's own daily cap (its override of the mailbox cap);
    a campaign at its cap has its due emails moved to the next window."""
    capped = {campaign_id: cap for _, campaign_id, cap, _ in rows if cap is not None}
    if not capped:
        return [email_id for email_id, _, _, _ in rows]
    day_start = mailbox_day_start(mailbox, now)
    counts = dict(
        (
            await session.execute(
                select(ScheduledEmail.campaign_id, func.count())
                .where(
                    ScheduledEmail.campaign_id.in_(capped),
                    or_(
                        ScheduledEmail.sent_at >= day_start,
                        ScheduledEmail.status == EmailStatus.sending,
                    ),
                )
                .group_by(ScheduledEmail.campaign_id)
            )
        ).all()
    )
    room = {campaign_id: cap - counts.get(campaign_id, 0) for campaign_id, cap in capped.items()}
    kept: list[uuid.UUID] = []
    for email_id, campaign_id, _, _ in rows:
        if campaign_id not in room:
            kept.append(email_id)
        elif room[campaign_id] > 0:
            room[campaign_id] -= 1
            kept.append(email_id)
    tomorrow = mailbox_day_start(mailbox, now + timedelta(days=1))
    for campaign_id, left in room.items():
        if left <= 0 and counts.get(campaign_id, 0) >= capped[campaign_id]:
            campaign = await session.get(Campaign, campaign_id)
            if campaign is not None:
                moved = await campaign_service.replan_overdue(
                    session, campaign=campaign, mailbox=mailbox, after=tomorrow
                )
                _count_deferred(session, mailbox, moved)
    return kept


async def _defer_to_next_window(session: AsyncSession, mailbox: Mailbox, now: datetime) -> None:
    """The cap is reached: emails already due move to their campaign's next window."""
    campaign_ids = await session.scalars(
        select(ScheduledEmail.campaign_id)
        .where(
            ScheduledEmail.mailbox_id == mailbox.id,
            ScheduledEmail.status == EmailStatus.ready,
            ScheduledEmail.due_at <= now,
        )
        .distinct()
    )
    tomorrow = mailbox_day_start(mailbox, now + timedelta(days=1))
    for campaign_id in list(campaign_ids):
        campaign = await session.get(Campaign, campaign_id)
        if campaign is not None:
            moved = await campaign_service.replan_overdue(
                session, campaign=campaign, mailbox=mailbox, after=tomorrow
            )
            _count_deferred(session, mailbox, moved)


async def release_claims(database: Database, ids: list[uuid.UUID]) -> None:
    """Hand back claimed emails whose send never started (the process is stopping):
    ``ready`` again, the attempt not counted, for the next tick of any worker."""
    if not ids:
        return
    async with database.session() as session:
        await session.execute(
            update(ScheduledEmail)
            .where(ScheduledEmail.id.in_(ids), ScheduledEmail.status == EmailStatus.sending)
            .values(
                status=EmailStatus.ready,
                lease_until=None,
                attempts=ScheduledEmail.attempts - 1,
                updated_at=utcnow(),
            )
        )
    log.info("claimed emails released on stop", emails=len(ids))


def _count_deferred(session: AsyncSession, mailbox: Mailbox, emails: int) -> None:
    if emails > 0:
        metrics.count_after_commit(
            session, metrics.EMAILS_DEFERRED_BY_CAP.labels(mailbox.provider.value), emails
        )
