"""Sending: prepare drafts, claim due emails under a lease, send each exactly once.

The tick (``campaign.send_due_emails``, every 30 s) first sweeps pending emails
whose preparation stalled (restarted, or failed and refunded past the retry
window), then reconciles emails whose lease expired (a worker died mid-send),
then, mailbox by mailbox,
claims due emails up to what is left of the mailbox's daily cap (counted
from the database, in the mailbox's own day; the mailbox row is locked on
PostgreSQL, and SQLite serialises writers, so several workers never exceed
it), and sends each in its own transaction. A send whose outcome is unknown
is never retried blindly: it is reconciled with the provider first.
"""

from __future__ import annotations

import asyncio
import enum
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

from redis.exceptions import RedisError
from sqlalchemy import ColumnElement, Table, and_, bindparam, func, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import undefer
from taskiq.exceptions import SendTaskError

from outreach.campaign.service import campaign_service
from outreach.config import get_settings
from outreach.kit import metrics
from outreach.kit.clock import utcnow
from outreach.kit.db import Database
from outreach.kit.errors import AppError, NotFound
from outreach.kit.jobs import enqueue
from outreach.kit.logging import get_logger
from outreach.kit.storage import get_storage
from outreach.kit.unsubscribe import make_unsubscribe_token, unsubscribe_url
from outreach.mailbox.gmail import GmailDailyLimitExceeded, GmailRateLimited
from outreach.mailbox.mime import Attachment, EncodedMessage, OutgoingEmail, build_message
from outreach.mailbox.providers import (
    MailboxUnavailable,
    MailProvider,
    MessageRefused,
    NothingSent,
    SendOutcomeUnknown,
)
from outreach.mailbox.service import mailbox_service
from outreach.models import FailedJob, Mailbox, MailboxProvider, MailboxStatus, User
from outreach.models.campaign import Campaign, CampaignStatus, EmailStatus, ScheduledEmail
from outreach.models.resume import Resume
from outreach.referral.service import ReferralTrigger, referral_service

log = get_logger("outreach.sending")

LEASE = timedelta(minutes=5)
MAX_ATTEMPTS = 5
PREPARE_BATCH = 50
CLAIM_BATCH = 25
MIN_RETRY_DELAY = timedelta(minutes=1)
# The failed_jobs task name of a send that failed for good (an operator may retry it).
SEND_EMAIL_TASK = "campaign.send_email"
_ACTIVE = (CampaignStatus.scheduled, CampaignStatus.sending)


_CONTENT_TYPES = {
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
}


async def resume_attachment(
    session: AsyncSession, resume_id: uuid.UUID | None
) -> Attachment | None:
    """The resume a campaign attaches (the file as uploaded), or None."""
    if resume_id is None:
        return None
    resume = await session.get(Resume, resume_id)
    if resume is None:
        return None  # deleted since scheduling: send without it rather than not at all
    content = await get_storage().get(resume.file_key)
    return Attachment(
        filename=resume.file_name,
        content=content,
        content_type=_CONTENT_TYPES.get(resume.kind, "application/octet-stream"),
    )


def build_mime(
    email: ScheduledEmail, mailbox: Mailbox, attachment: Attachment | None = None
) -> EncodedMessage:
    """The exact message of ``email``, with our Message-ID and the unsubscribe headers."""
    settings = get_settings()
    token = make_unsubscribe_token(
        secret=settings.secret_key.get_secret_value(),
        sender_id=email.user_id,
        email=email.to_address,
        campaign_id=email.campaign_id,
    )
    links = [unsubscribe_url(settings.base_url, token)]
    if settings.unsubscribe_mailto:
        links.append(f"mailto:{settings.unsubscribe_mailto}?subject=unsubscribe")
    return build_message(
        OutgoingEmail(
            from_address=mailbox.address,
            from_name=mailbox.display_name,
            to_address=email.to_address,
            to_name=email.to_name,
            subject=email.subject,
            text=email.body_text,
            html=email.body_html,
            list_unsubscribe=tuple(links),
            one_click_unsubscribe=True,
            message_id=email.rfc822_message_id,
            attachments=(attachment,) if attachment is not None else (),
        )
    )


def mailbox_day_start(mailbox: Mailbox, now: datetime) -> datetime:
    zone = ZoneInfo(mailbox.timezone)
    local_day = now.astimezone(zone).date()
    return datetime.combine(local_day, time(0), tzinfo=zone).astimezone(UTC)


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
        email.draft_id = await provider.create_draft(message)
        email.thread_id = provider.last_thread_id
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


def retry_window() -> timedelta:
    return timedelta(seconds=get_settings().send_retry_window_seconds)


def next_try(email: ScheduledEmail, now: datetime) -> datetime | None:
    """When to try ``email`` again after a failure that sent nothing, or None when its
    retry window is over. Starts the window at the first such failure; the delay
    doubles (the time since that failure, at least a minute) up to the deadline."""
    window = retry_window()
    if email.retry_deadline is None:
        email.retry_deadline = now + window
    if now >= email.retry_deadline:
        return None
    delay = max(MIN_RETRY_DELAY, now - (email.retry_deadline - window))
    return min(now + delay, email.retry_deadline)


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


# -- claiming ------------------------------------------------------------------------


async def _sent_today(session: AsyncSession, mailbox: Mailbox, now: datetime) -> int:
    """Sends of the mailbox's current day, plus those in flight (they may land today)."""
    day_start = mailbox_day_start(mailbox, now)
    count = await session.scalar(
        select(func.count())
        .select_from(ScheduledEmail)
        .where(
            ScheduledEmail.mailbox_id == mailbox.id,
            or_(
                ScheduledEmail.sent_at >= day_start,
                ScheduledEmail.status == EmailStatus.sending,
                and_(
                    ScheduledEmail.status == EmailStatus.unknown,
                    ScheduledEmail.updated_at >= day_start,
                ),
            ),
        )
    )
    return int(count or 0)


async def claim_due_emails(
    session: AsyncSession, *, mailbox_id: uuid.UUID, now: datetime
) -> list[uuid.UUID]:
    """Claim this mailbox's due emails under a lease, never past its daily cap.

    Locks the mailbox row (PostgreSQL) so two workers count and claim one after
    the other; SQLite's BEGIN IMMEDIATE does the same."""
    mailbox = await session.scalar(
        select(Mailbox).where(Mailbox.id == mailbox_id).with_for_update()
    )
    if mailbox is None or mailbox.status != MailboxStatus.active:
        return []
    if mailbox.sending_deferred_until is not None and mailbox.sending_deferred_until > now:
        return []
    room = mailbox.daily_cap - await _sent_today(session, mailbox, now)
    if room <= 0:
        await _defer_to_next_window(session, mailbox, now)
        return []
    due = (
        select(ScheduledEmail.id, ScheduledEmail.campaign_id, Campaign.daily_cap)
        .join(Campaign, Campaign.id == ScheduledEmail.campaign_id)
        .where(
            ScheduledEmail.mailbox_id == mailbox_id,
            ScheduledEmail.status == EmailStatus.ready,
            ScheduledEmail.due_at <= now,
            or_(ScheduledEmail.next_attempt_at.is_(None), ScheduledEmail.next_attempt_at <= now),
            Campaign.status.in_(_ACTIVE),
        )
        .order_by(ScheduledEmail.due_at)
        .limit(min(room, CLAIM_BATCH))
        .with_for_update(skip_locked=True, of=ScheduledEmail)
    )
    rows = list((await session.execute(due)).all())
    ids = await _within_campaign_caps(session, mailbox, rows, now)
    if not ids:
        return []
    await session.execute(
        update(ScheduledEmail)
        .where(ScheduledEmail.id.in_(ids))
        .values(
            status=EmailStatus.sending,
            lease_until=now + LEASE,
            attempts=ScheduledEmail.attempts + 1,
            updated_at=now,
        )
    )
    return ids


async def _within_campaign_caps(
    session: AsyncSession, mailbox: Mailbox, rows: list[Any], now: datetime
) -> list[uuid.UUID]:
    """Drop claims past a campaign's own daily cap (its override of the mailbox cap);
    a campaign at its cap has its due emails moved to the next window."""
    capped = {campaign_id: cap for _, campaign_id, cap in rows if cap is not None}
    if not capped:
        return [email_id for email_id, _, _ in rows]
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
    for email_id, campaign_id, _ in rows:
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


def _count_deferred(session: AsyncSession, mailbox: Mailbox, emails: int) -> None:
    if emails > 0:
        metrics.count_after_commit(
            session, metrics.EMAILS_DEFERRED_BY_CAP.labels(mailbox.provider.value), emails
        )


# -- sending -------------------------------------------------------------------------


async def _finish_sent(
    session: AsyncSession, email: ScheduledEmail, mailbox: Mailbox, message_id: str
) -> None:
    email.status = EmailStatus.sent
    email.provider_message_id = message_id
    email.sent_at = utcnow()
    email.lease_until = None
    email.last_error = None
    email.mime = None  # the provider keeps the copy
    metrics.count_after_commit(session, metrics.EMAILS_SENT.labels(mailbox.provider.value))


async def after_sends(database: Database, email_ids: list[uuid.UUID]) -> None:
    """Once per tick, not per email: campaigns with a first send become ``sending``, and
    referred users whose emails really went out through Gmail reward their referrer."""
    if not email_ids:
        return
    async with database.session() as session:
        sent = (
            select(ScheduledEmail.campaign_id)
            .where(ScheduledEmail.id.in_(email_ids), ScheduledEmail.status == EmailStatus.sent)
            .scalar_subquery()
        )
        await session.execute(
            update(Campaign)
            .where(Campaign.status == CampaignStatus.scheduled, Campaign.id.in_(sent))
            .values(status=CampaignStatus.sending, updated_at=utcnow())
        )
        referred = await session.scalars(
            select(ScheduledEmail.user_id)
            .join(Mailbox, Mailbox.id == ScheduledEmail.mailbox_id)
            .join(User, User.id == ScheduledEmail.user_id)
            .where(
                ScheduledEmail.id.in_(email_ids),
                ScheduledEmail.status == EmailStatus.sent,
                Mailbox.provider == MailboxProvider.gmail,
                User.referred_by_id.is_not(None),
            )
            .distinct()
        )
        for user_id in list(referred):
            await referral_service.grant_referral_reward_if_eligible(
                session, referred_user_id=user_id, trigger=ReferralTrigger.first_gmail_send
            )


async def _fail(session: AsyncSession, email: ScheduledEmail, mailbox: Mailbox, error: str) -> None:
    email.last_error = error[:1000]
    metrics.count_after_commit(session, metrics.EMAILS_FAILED.labels(mailbox.provider.value))
    await campaign_service.refund_email(session, email=email, status=EmailStatus.failed)
    session.add(
        FailedJob(
            task_name=SEND_EMAIL_TASK,
            task_id=str(email.id),
            args={"email_id": str(email.id), "campaign_id": str(email.campaign_id)},
            error=error[:2000],
            traceback="",
            attempts=email.attempts,
            retried_at=None,
        )
    )


def _retry_later(email: ScheduledEmail, error: str, *, at: datetime | None = None) -> None:
    email.status = EmailStatus.ready
    email.lease_until = None
    email.last_error = error[:1000]
    email.next_attempt_at = at or utcnow() + timedelta(seconds=30 * 2 ** min(email.attempts, 8))


async def _reconcile(
    session: AsyncSession,
    email: ScheduledEmail,
    mailbox: Mailbox,
    provider: MailProvider,
    error: str,
) -> None:
    """The send may have happened: find out before anything else."""
    if not provider.can_confirm_sends:
        email.status = EmailStatus.unknown  # never resent, not refunded, shown to the user
        email.lease_until = None
        email.last_error = f"outcome unknown: {error}"[:1000]
        metrics.count_after_commit(session, metrics.EMAILS_UNKNOWN.labels(mailbox.provider.value))
        return
    found = await provider.find_sent(
        rfc822_message_id=email.rfc822_message_id,
        draft_id=email.draft_id,
        thread_id=email.thread_id,
    )
    if found is not None:
        await _finish_sent(session, email, mailbox, found)
    elif email.draft_id is not None and error.startswith("draft gone"):
        await _fail(
            session, email, mailbox, "the draft was deleted in the mailbox before it was sent"
        )
    elif email.attempts >= MAX_ATTEMPTS:
        await _fail(session, email, mailbox, error)
    else:
        _retry_later(email, error)


async def send_one(
    session: AsyncSession,
    email: ScheduledEmail,
    mailbox: Mailbox,
    attachment: Attachment | None,
    sent: SentRecorder,
) -> None:
    """Send one claimed email; every path ends in a committed, truthful status."""
    try:
        provider = await mailbox_service.provider_for(session, mailbox)
    except MailboxUnavailable as exc:
        _retry_later(email, str(exc))
        email.attempts -= 1  # not an attempt: the campaign is paused until reconnected
        return
    try:
        if email.draft_id is not None and provider.supports_drafts:
            message_id = await provider.send_draft(email.draft_id)
        elif email.mime is not None:
            message_id = await provider.send(
                EncodedMessage(
                    data=email.mime,
                    message_id=email.rfc822_message_id,
                    sender=mailbox.address,
                    recipients=(email.to_address,),
                ).dated(utcnow())
            )
        else:
            message_id = await provider.send(build_mime(email, mailbox, attachment))
    except SendOutcomeUnknown as exc:
        await _reconcile(session, email, mailbox, provider, str(exc))
        return
    except GmailRateLimited as exc:
        _retry_later(email, str(exc))
        return
    except GmailDailyLimitExceeded as exc:
        retry_at = exc.extra.get("retry_at")
        _retry_later(email, str(exc), at=datetime.fromisoformat(retry_at) if retry_at else None)
        email.attempts -= 1
        _count_deferred(session, mailbox, 1)  # Gmail's own daily cap
        return
    except MailboxUnavailable as exc:
        _retry_later(email, str(exc))
        email.attempts -= 1
        return
    except NotFound as exc:
        # The draft is gone: sent by hand, or deleted by the user in the mailbox.
        await _reconcile(session, email, mailbox, provider, f"draft gone: {exc}")
        return
    except NothingSent as exc:  # nothing left the process: safe to send again later
        await retry_or_fail(session, email, mailbox, str(exc))
        return
    except AppError as exc:  # refused for good (MessageRefused) or not sendable at all
        await _fail(session, email, mailbox, str(exc))
        return
    await session.commit()  # a refreshed token; and SQLite has one writer at a time
    thread_id = provider.last_thread_id or email.thread_id
    await _record_sent(sent, email.id, message_id, mailbox.provider.value, thread_id)


async def retry_or_fail(
    session: AsyncSession, email: ScheduledEmail, mailbox: Mailbox, error: str
) -> None:
    """A send that sent nothing: tried again with backoff within the retry window
    (``send_retry_window_seconds`` from the first such failure), then failed and refunded."""
    at = next_try(email, utcnow())
    if at is None:
        await _fail(session, email, mailbox, f"{error} (still failing after the retry window)")
    else:
        _retry_later(email, error, at=at)


@dataclass(frozen=True)
class _Claimed:
    email: ScheduledEmail  # detached, with its stored MIME
    mailbox: Mailbox  # detached
    attachment: Attachment | None  # for a message built at send time


async def _load_claimed(database: Database, ids: list[uuid.UUID]) -> list[_Claimed]:
    """The claimed emails with their mailboxes, in one query per chunk (not one per email),
    and each attached resume read from storage once (not once per email)."""
    claimed: list[_Claimed] = []
    attachments: dict[uuid.UUID, Attachment | None] = {}
    async with database.session() as session:
        for start in range(0, len(ids), 500):
            rows = await session.execute(
                select(ScheduledEmail, Mailbox, Campaign.resume_id)
                .join(Mailbox, Mailbox.id == ScheduledEmail.mailbox_id)
                .join(Campaign, Campaign.id == ScheduledEmail.campaign_id)
                .where(
                    ScheduledEmail.id.in_(ids[start : start + 500]),
                    ScheduledEmail.status == EmailStatus.sending,
                )
                .options(undefer(ScheduledEmail.mime))
            )
            for email, mailbox, resume_id in rows:
                attachment = None
                if email.mime is None and email.draft_id is None and resume_id is not None:
                    if resume_id not in attachments:
                        attachments[resume_id] = await resume_attachment(session, resume_id)
                    attachment = attachments[resume_id]
                claimed.append(_Claimed(email, mailbox, attachment))
    by_id = {c.email.id: c for c in claimed}
    return [by_id[email_id] for email_id in ids if email_id in by_id]


class SentRecorder:
    """Records successful sends in the background, batched: outcomes that arrive while
    a commit is under way go into the next one, so a busy tick writes a few batches
    instead of a transaction per email, and a sender's concurrency slot is free as
    soon as the provider has answered. ``drain`` waits for every outcome of the tick.
    A batch that cannot be written leaves its emails ``sending``: their lease
    expires and they are reconciled, exactly as after a crash."""

    def __init__(self, database: Database) -> None:
        self._database = database
        self._queue: list[tuple[dict[str, Any], str]] = []  # (row, provider)
        self._writer: asyncio.Task[None] | None = None

    def record(
        self, email_id: uuid.UUID, message_id: str, provider: str, thread_id: str | None = None
    ) -> None:
        row = {
            "b_id": email_id,
            "b_message_id": message_id,
            "b_thread_id": thread_id,
            "b_sent_at": utcnow(),
        }
        self._queue.append((row, provider))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write())

    async def drain(self) -> None:
        if self._writer is not None:
            await self._writer

    async def _write(self) -> None:
        table = cast(Table, ScheduledEmail.__table__)
        statement = (
            update(table)
            .where(table.c.id == bindparam("b_id"), table.c.status == EmailStatus.sending)
            .values(
                status=EmailStatus.sent,
                provider_message_id=bindparam("b_message_id"),
                thread_id=bindparam("b_thread_id"),
                sent_at=bindparam("b_sent_at"),
                lease_until=None,
                last_error=None,
                mime=None,  # the provider keeps the copy
                updated_at=bindparam("b_sent_at"),
            )
        )
        while self._queue:
            batch, self._queue = self._queue, []
            try:
                async with self._database.session() as session:
                    batch = await self._still_sending(session, batch)
                    if batch:
                        await session.execute(statement, [row for row, _ in batch])
            except Exception as exc:  # the expired leases are reconciled
                log.error(
                    "sent emails not recorded; they will be reconciled",
                    emails=[str(row["b_id"]) for row, _ in batch],
                    error=repr(exc),
                )
                continue  # counted when reconciled
            for provider, emails in Counter(provider for _, provider in batch).items():
                metrics.EMAILS_SENT.labels(provider).inc(emails)

    @staticmethod
    async def _still_sending(
        session: AsyncSession, batch: list[tuple[dict[str, Any], str]]
    ) -> list[tuple[dict[str, Any], str]]:
        """The outcomes whose email is still claimed, locked until the commit: one whose
        lease expired and was reconciled meanwhile is recorded (and counted) already."""
        ids = await session.scalars(
            select(ScheduledEmail.id)
            .where(
                ScheduledEmail.id.in_([row["b_id"] for row, _ in batch]),
                ScheduledEmail.status == EmailStatus.sending,
            )
            .with_for_update()
        )
        claimed = set(ids.all())
        return [(row, provider) for row, provider in batch if row["b_id"] in claimed]


async def _record_sent(
    sent: SentRecorder, email_id: uuid.UUID, message_id: str, provider: str, thread_id: str | None
) -> None:
    sent.record(email_id, message_id, provider, thread_id)


async def _send_claimed(database: Database, claimed: _Claimed, sent: SentRecorder) -> None:
    async with database.session() as session:
        # Copies of the loaded rows, without a query: the send holds no transaction
        # (and no pooled connection) while it waits for the provider.
        mailbox = await session.merge(claimed.mailbox, load=False)
        email = await session.merge(claimed.email, load=False)
        await send_one(session, email, mailbox, claimed.attachment, sent)


async def recover_expired_leases(database: Database, now: datetime) -> int:
    """A worker died holding these: reconcile each before anything is resent."""
    async with database.session() as session:
        ids = list(
            (
                await session.scalars(
                    select(ScheduledEmail.id).where(
                        ScheduledEmail.status == EmailStatus.sending,
                        ScheduledEmail.lease_until < now,
                    )
                )
            ).all()
        )
    for email_id in ids:
        try:
            await _recover_one(database, email_id)
        except AppError as exc:
            # The provider cannot tell us yet (its reads fail): the email stays claimed
            # and the next tick asks again; the other mailboxes must not wait for it.
            log.warning("lease not reconciled yet", email_id=str(email_id), error=str(exc))
    await after_sends(database, ids)
    return len(ids)


async def _recover_one(database: Database, email_id: uuid.UUID) -> None:
    async with database.session() as session:
        email = await session.get(ScheduledEmail, email_id, with_for_update=True)
        if email is None or email.status != EmailStatus.sending:
            return
        mailbox = await session.get(Mailbox, email.mailbox_id)
        assert mailbox is not None
        try:
            provider = await mailbox_service.provider_for(session, mailbox)
        except MailboxUnavailable:
            return
        await _reconcile(session, email, mailbox, provider, "worker stopped during the send")


async def send_due_emails(database: Database) -> int:
    """One tick: restart stalled preparations, reconcile expired leases, then claim and
    send due emails per mailbox."""
    now = utcnow()
    await sweep_unprepared_emails(database, now)
    await recover_expired_leases(database, now)
    async with database.session() as session:
        mailbox_ids = list(
            (
                await session.scalars(
                    select(ScheduledEmail.mailbox_id)
                    .where(ScheduledEmail.status == EmailStatus.ready, ScheduledEmail.due_at <= now)
                    .distinct()
                )
            ).all()
        )
    concurrency = get_settings().send_concurrency
    sent = SentRecorder(database)
    claimed: list[uuid.UUID] = []
    if concurrency <= 1:
        for mailbox_id in mailbox_ids:
            async with database.session() as session:
                claimed += await claim_due_emails(session, mailbox_id=mailbox_id, now=now)
        for email in await _load_claimed(database, claimed):
            await _send_claimed(database, email, sent)
            await sent.drain()  # strictly one at a time (tests share one connection)
    else:
        # Sends wait on the network, so they run side by side (each its own
        # session), and a mailbox's sends start while the next mailbox is claimed;
        # one failing send must not stop the others.
        limit = asyncio.Semaphore(concurrency)

        async def send(email: _Claimed) -> None:
            async with limit:
                await _send_claimed(database, email, sent)

        loaded: list[_Claimed] = []
        in_flight: list[asyncio.Task[None]] = []
        try:
            for mailbox_id in mailbox_ids:
                async with database.session() as session:
                    ids = await claim_due_emails(session, mailbox_id=mailbox_id, now=now)
                claimed += ids
                batch = await _load_claimed(database, ids)
                loaded += batch
                in_flight += [asyncio.create_task(send(email)) for email in batch]
        finally:
            results = await asyncio.gather(*in_flight, return_exceptions=True)
            await sent.drain()
        for email, result in zip(loaded, results, strict=True):
            if isinstance(result, BaseException):
                log.error(
                    "send failed unexpectedly; its lease will be reconciled",
                    email_id=str(email.email.id),
                    error=repr(result),
                )
    await after_sends(database, claimed)
    await _complete_finished_campaigns(database)
    return len(claimed)


async def _complete_finished_campaigns(database: Database) -> None:
    async with database.session() as session:
        unfinished = (
            select(ScheduledEmail.id)
            .where(
                ScheduledEmail.campaign_id == Campaign.id,
                ScheduledEmail.status.in_(
                    [
                        EmailStatus.pending,
                        EmailStatus.ready,
                        EmailStatus.awaiting_approval,
                        EmailStatus.sending,
                    ]
                ),
            )
            .exists()
        )
        await session.execute(
            update(Campaign)
            .where(Campaign.status.in_(_ACTIVE), ~unfinished)
            .values(status=CampaignStatus.completed, completed_at=utcnow())
        )
