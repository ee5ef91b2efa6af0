"""Preparing pending emails (drafts, or the stored message) with an outcome per email,
and the sweep that gives every pending email a next try or a final status."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime, timedelta

from redis.exceptions import RedisError
from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession
from taskiq.exceptions import SendTaskError

from outreach.campaign.sending.messages import build_mime, resume_attachment
from outreach.campaign.sending.recording import _fail, next_try, retry_window
from outreach.campaign.sending.rules import _ACTIVE, MIN_RETRY_DELAY, PREPARE_BATCH, log
from outreach.config import get_settings
from outreach.kit.clock import utcnow
from outreach.kit.db import Database
from outreach.kit.errors import AppError
from outreach.kit.jobs import enqueue
from outreach.mailbox.mime import Attachment
from outreach.mailbox.providers import (
    MailboxUnavailable,
    MailProvider,
    MessageRefused,
)
from outreach.mailbox.service import mailbox_service
from outreach.models import Mailbox, MailboxStatus
from outreach.models.campaign import Campaign, EmailStatus, ScheduledEmail

# -- preparing -----------------------------------------------------------------------


async def prepare_campaign_emails(database: Database, campaign_id: uuid.UUID) -> int:
    """Make pending emails ready: a draft each for providers that keep drafts (Gmail
    full mode, the outbox), one email per transaction so a failure never leaves a
    created draft unrecorded; other providers in batches. Progress shows as it goes.

    Every email gets its own outcome: one the provider refuses for good (or that no
    message can carry) fails with the reason and is refunded, and the next one goes
    on; one that breaks unexpectedly is retried later on its own. When the provider
    cannot be reached (nothing was sent), the campaign's remaining emails wait for a
    later try together (the tick's sweep starts it) within the retry window.
    Returns how many were prepared."""
    prepared = 0
    attachment: Attachment | None = None
    attachment_loaded = False
    while True:
        async with database.session() as session:
            campaign = await session.get(Campaign, campaign_id)
            if campaign is None or campaign.status not in _ACTIVE:
                return prepared
            mailbox = await session.get(Mailbox, campaign.mailbox_id)
            assert mailbox is not None
            try:
                provider = await mailbox_service.provider_for(session, mailbox)
            except MailboxUnavailable:
                return prepared  # the mailbox-unavailable hook paused the campaign
            now = utcnow()
            batch = list(
                (
                    await session.scalars(
                        select(ScheduledEmail)
                        .where(
                            ScheduledEmail.campaign_id == campaign_id,
                            ScheduledEmail.status == EmailStatus.pending,
                            _may_try(now),
                        )
                        .order_by(ScheduledEmail.due_at)
                        .limit(1 if provider.supports_drafts else PREPARE_BATCH)
                        .with_for_update(skip_locked=True)
                    )
                ).all()
            )
            if not batch:
                return prepared
            if provider.supports_drafts and not attachment_loaded:
                attachment = await resume_attachment(session, campaign.resume_id)
                attachment_loaded = True
            for email in batch:
                outcome = await _prepare_one(
                    session, email, campaign, mailbox, provider, attachment
                )
                if outcome is _Prepared.provider_down:
                    await _defer_preparation(session, campaign_id, now)
                if outcome in (_Prepared.provider_down, _Prepared.mailbox_gone):
                    return prepared
                prepared += outcome is _Prepared.ready


class _Prepared(enum.Enum):
    ready = "ready"
    ended = "ended"  # failed (refunded) or waiting for its own later try
    provider_down = "provider_down"  # nothing could be sent: the others wait too
    mailbox_gone = "mailbox_gone"  # revoked or disconnected: stop, keep what is recorded


def _may_try(now: datetime) -> ColumnElement[bool]:
    return or_(ScheduledEmail.next_attempt_at.is_(None), ScheduledEmail.next_attempt_at <= now)


async def _prepare_one(
    session: AsyncSession,
    email: ScheduledEmail,
    campaign: Campaign,
    mailbox: Mailbox,
    provider: MailProvider,
    attachment: Attachment | None,
) -> _Prepared:
    """Prepare one email and record its outcome in ``session``."""
    # Without drafts the message is rendered once and sent as stored, unless a resume
    # is attached: a copy of the file per email is too much to keep, so that message
    # is built at send time.
    keep_mime = not provider.supports_drafts and campaign.resume_id is None
    if not (provider.supports_drafts or keep_mime):
        return _made_ready(email, campaign)
    try:
        message = build_mime(email, mailbox, attachment)
    except Exception as exc:  # an address or header no message can carry: final
        if not isinstance(exc, AppError):
            log.exception("message not built", email_id=str(email.id))
        await _fail(session, email, mailbox, f"the message cannot be built: {exc}")
        return _Prepared.ended
    if not provider.supports_drafts:
        email.mime = message.data
        return _made_ready(email, campaign)
    try:
        # A follow-up's draft goes in the thread of the step before it (set by the
        # sequence job); Gmail answers with the thread it filed the draft in.
        email.draft_id = await provider.create_draft(message, thread_id=email.thread_id)
        email.thread_id = provider.last_thread_id or email.thread_id
    except MessageRefused as exc:  # this provider refuses this message for good
        await _fail(session, email, mailbox, str(exc))
        return _Prepared.ended
    except MailboxUnavailable:
        return _Prepared.mailbox_gone  # recorded in the session; the campaign is paused
    except SQLAlchemyError:
        raise
    except AppError as exc:  # unreachable, no token, rate limited, 5xx: nothing sent
        return await _retry_preparation(session, email, mailbox, str(exc), _Prepared.provider_down)
    except Exception as exc:  # this email broke something: it alone is tried later
        log.exception("email not prepared; tried again later", email_id=str(email.id))
        return await _retry_preparation(session, email, mailbox, repr(exc), _Prepared.ended)
    return _made_ready(email, campaign)


def _made_ready(email: ScheduledEmail, campaign: Campaign) -> _Prepared:
    email.status = EmailStatus.awaiting_approval if campaign.review_mode else EmailStatus.ready
    email.next_attempt_at = email.retry_deadline = None
    return _Prepared.ready


async def _retry_preparation(
    session: AsyncSession, email: ScheduledEmail, mailbox: Mailbox, error: str, then: _Prepared
) -> _Prepared:
    at = next_try(email, utcnow())
    if at is None:
        await _fail(session, email, mailbox, f"not prepared in time: {error}")
        return _Prepared.ended
    email.last_error = error[:1000]
    email.next_attempt_at = at
    return then


async def _defer_preparation(session: AsyncSession, campaign_id: uuid.UUID, now: datetime) -> None:
    """The provider cannot be reached: the campaign's other pending emails wait with the
    one that failed (the sweep starts preparation again then), within the retry window."""
    failed = await session.scalar(
        select(func.min(ScheduledEmail.next_attempt_at)).where(
            ScheduledEmail.campaign_id == campaign_id,
            ScheduledEmail.status == EmailStatus.pending,
            ScheduledEmail.next_attempt_at > now,
        )
    )
    await session.execute(
        update(ScheduledEmail)
        .where(
            ScheduledEmail.campaign_id == campaign_id,
            ScheduledEmail.status == EmailStatus.pending,
            _may_try(now),
        )
        .values(
            next_attempt_at=failed or now + MIN_RETRY_DELAY,
            retry_deadline=func.coalesce(ScheduledEmail.retry_deadline, now + retry_window()),
            updated_at=now,
        )
    )


async def sweep_unprepared_emails(database: Database, now: datetime) -> int:
    """Give every pending email of a live campaign a next try or a final status: one
    whose preparation is due again (``next_attempt_at``), or that nobody touched for
    ``prepare_stall_seconds`` (its preparation job was lost, died or gave up), has its
    preparation started again, or fails and is refunded once its retry window is over.
    Returns how many emails it acted on."""
    stall = timedelta(seconds=get_settings().prepare_stall_seconds)
    restart: set[uuid.UUID] = set()
    async with database.session() as session:
        stuck = await session.scalars(
            select(ScheduledEmail)
            .join(Campaign, Campaign.id == ScheduledEmail.campaign_id)
            .where(
                ScheduledEmail.status == EmailStatus.pending,
                Campaign.status.in_(_ACTIVE),
                or_(
                    ScheduledEmail.next_attempt_at <= now,
                    and_(
                        ScheduledEmail.next_attempt_at.is_(None),
                        ScheduledEmail.updated_at <= now - stall,
                    ),
                ),
            )
            .with_for_update(skip_locked=True, of=ScheduledEmail)
        )
        emails = list(stuck.all())
        for email in emails:
            if email.retry_deadline is not None and email.retry_deadline <= now:
                mailbox = await session.get(Mailbox, email.mailbox_id)
                assert mailbox is not None
                reason = email.last_error or "its preparation never completed"
                await _fail(session, email, mailbox, f"not prepared in time: {reason}")
                continue
            # Checked again ``stall`` from now: by then the job has prepared it.
            email.retry_deadline = email.retry_deadline or now + retry_window()
            email.next_attempt_at = None
            email.updated_at = now
            restart.add(email.campaign_id)
    for campaign_id in sorted(restart):
        await _restart_preparation(campaign_id)
    return len(emails)


async def _restart_preparation(campaign_id: uuid.UUID) -> None:
    try:
        await enqueue("campaign.prepare_emails", campaign_id=str(campaign_id))
    except (SendTaskError, RedisError, OSError, RuntimeError) as exc:
        # The emails stay pending, untouched: the next sweep after the stall tries again.
        log.warning("preparation not restarted", campaign_id=str(campaign_id), error=repr(exc))


async def delete_drafts(database: Database, mailbox_id: uuid.UUID, draft_ids: list[str]) -> int:
    """Remove drafts of cancelled emails from the mailbox (best effort, one by one)."""
    deleted = 0
    async with database.session() as session:
        mailbox = await session.get(Mailbox, mailbox_id)
        if mailbox is None or mailbox.status != MailboxStatus.active:
            return 0
        provider = await mailbox_service.provider_for(session, mailbox)
        remove = getattr(provider, "delete_draft", None)
        for draft_id in draft_ids:
            try:
                if remove is not None:
                    await remove(draft_id)
                    deleted += 1
            except (AppError, OSError) as exc:
                log.warning("draft not deleted", draft_id=draft_id, error=str(exc))
    return deleted
