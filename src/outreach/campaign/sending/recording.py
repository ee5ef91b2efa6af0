"""Recording outcomes: sent (in batches, counted once), failed and refunded, retried
within the window when nothing was sent, and campaigns that are done."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.campaign import replies
from outreach.campaign.sending.rules import _ACTIVE, MIN_RETRY_DELAY, SEND_EMAIL_TASK, log
from outreach.campaign.service import campaign_service
from outreach.config import get_settings
from outreach.kit import metrics
from outreach.kit.clock import utcnow
from outreach.kit.db import Database
from outreach.models import (
    EmailEventKind,
    EmailEventSource,
    FailedJob,
    Mailbox,
    MailboxProvider,
    User,
)
from outreach.models.campaign import Campaign, CampaignStatus, EmailStatus, ScheduledEmail
from outreach.referral.service import ReferralTrigger, referral_service


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


async def _bounce(
    session: AsyncSession, email: ScheduledEmail, mailbox: Mailbox, error: str
) -> None:
    """The recipient's server refused it at RCPT or DATA (an SMTP 5xx): failed and refunded
    like any refusal (nothing was delivered), and recorded as a bounce at once, which
    suppresses the address for this sender and cancels and refunds the recipient's later
    steps (``replies.record_event``; each email's refund is keyed, so it happens once)."""
    await _fail(session, email, mailbox, f"bounced: {error}")
    await replies.record_event(
        session,
        email=email,
        kind=EmailEventKind.bounced,
        source=EmailEventSource.smtp,
        dedupe_key="smtp",
        detail=error,
    )


def _retry_later(email: ScheduledEmail, error: str, *, at: datetime | None = None) -> None:
    email.status = EmailStatus.ready
    email.lease_until = None
    email.last_error = error[:1000]
    email.next_attempt_at = at or utcnow() + timedelta(seconds=30 * 2 ** min(email.attempts, 8))


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


class SentRecorder:
    """Records successful sends in the background, batched: an outcome waits up to
    ``linger`` seconds (less when ``BATCH`` are waiting) for others to share its commit,
    and outcomes that arrive while a commit is under way go into the next one. So a
    busy tick writes a few batches, not a transaction per email, however quickly the
    commits go (on a fast machine, batches without the wait held one or two outcomes),
    and a sender's concurrency slot is free as soon as the provider has answered.
    ``drain`` writes what waits at once and waits for every outcome of the tick. A batch
    that cannot be written leaves its emails ``sending``: their lease expires and they
    are reconciled, exactly as after a crash (the wait is nothing beside the lease)."""

    LINGER = 0.1  # seconds
    BATCH = 100

    def __init__(self, database: Database, *, linger: float = LINGER) -> None:
        self._database = database
        self._linger = linger
        self._queue: list[tuple[dict[str, Any], str]] = []  # (row, provider)
        self._writer: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()  # a batch is full, or the tick is draining
        self._draining = False

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
        if len(self._queue) >= self.BATCH:
            self._wake.set()
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write())

    async def drain(self) -> None:
        self._draining = True
        self._wake.set()
        try:
            if self._writer is not None:
                await self._writer
        finally:
            self._draining = False
            self._wake.clear()

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
            try:
                # One connection for the batches that follow, pre-pinged once, not per
                # batch; a batch that fails hands back its connection.
                async with self._database.pinned() as database:
                    await self._write_batches(database, statement)
            except Exception as exc:  # no connection: what waits is reconciled, as below
                log.error(
                    "sent emails not recorded; they will be reconciled",
                    emails=[str(row["b_id"]) for row, _ in self._queue],
                    error=repr(exc),
                )
                self._queue = []

    async def _write_batches(self, database: Database, statement: Any) -> None:
        while self._queue:
            if not self._draining and len(self._queue) < self.BATCH:
                with contextlib.suppress(TimeoutError):  # the batch fills meanwhile
                    await asyncio.wait_for(self._wake.wait(), self._linger)
            if not self._draining:
                self._wake.clear()
            batch, self._queue = self._queue[: self.BATCH], self._queue[self.BATCH :]
            try:
                async with database.session() as session:
                    batch = await self._still_sending(session, batch)
                    if batch:
                        await session.execute(statement, [row for row, _ in batch])
            except Exception as exc:  # the expired leases are reconciled
                log.error(
                    "sent emails not recorded; they will be reconciled",
                    emails=[str(row["b_id"]) for row, _ in batch],
                    error=repr(exc),
                )
                return  # counted when reconciled; the next batch takes a fresh connection
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


async def _complete_finished_campaigns(database: Database) -> None:
    async with database.session() as session:
        unfinished = (
            select(ScheduledEmail.id)
            .where(
                ScheduledEmail.campaign_id == Campaign.id,
                ScheduledEmail.status.in_(
                    [
                        EmailStatus.waiting,  # a follow-up still to come
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
