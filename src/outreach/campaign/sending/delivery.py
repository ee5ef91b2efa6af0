"""The send tick: sweep, reconcile expired leases, claim per mailbox, send each claimed
email in its own session, and reconcile every send whose outcome is unknown."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import undefer

from outreach.campaign.sending.claiming import _count_deferred, claim_due_emails, release_claims
from outreach.campaign.sending.messages import build_mime, resume_attachment
from outreach.campaign.sending.preparing import sweep_unprepared_emails
from outreach.campaign.sending.recording import (
    SentRecorder,
    _bounce,
    _complete_finished_campaigns,
    _fail,
    _finish_sent,
    _record_sent,
    _retry_later,
    after_sends,
    retry_or_fail,
)
from outreach.campaign.sending.rules import MAX_ATTEMPTS, log
from outreach.config import get_settings
from outreach.kit import metrics
from outreach.kit.clock import utcnow
from outreach.kit.db import Database, in_session
from outreach.kit.errors import AppError, NotFound
from outreach.kit.shutdown import stop_requested
from outreach.mailbox.gmail import GmailDailyLimitExceeded, GmailRateLimited
from outreach.mailbox.mime import Attachment, EncodedMessage
from outreach.mailbox.providers import (
    MailboxUnavailable,
    MailProvider,
    NothingSent,
    RecipientBounced,
    SendOutcomeUnknown,
)
from outreach.mailbox.service import mailbox_service
from outreach.models import Mailbox
from outreach.models.campaign import Campaign, EmailStatus, ScheduledEmail


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
        # A first email's thread holds only what we sent for it; a follow-up's thread
        # holds the steps before it too, so a follow-up is found by its Message-ID.
        thread_id=email.thread_id if email.step == 0 else None,
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
    *,
    slot: AbstractAsyncContextManager[object] | None = None,
) -> None:
    """Send one claimed email; every path ends in a committed, truthful status.

    ``email`` and ``mailbox`` may be rows loaded by the tick and shared read-only with
    other sends: they join ``session`` only when an outcome other than sent is recorded
    here (a sent one is written by ``sent``), so a send that succeeds copies no row.
    ``slot`` (the tick's send concurrency) is held for the provider call alone: what
    comes before and after it does not keep another send waiting."""
    try:
        provider = await mailbox_service.provider_for(session, mailbox)
    except MailboxUnavailable as exc:
        email = await in_session(session, email)
        _retry_later(email, str(exc))
        email.attempts -= 1  # not an attempt: the campaign is paused until reconnected
        return
    try:
        async with slot or nullcontext():
            message_id = await _deliver(provider, email, mailbox, attachment)
    except AppError as exc:
        email, mailbox = await in_session(session, email), await in_session(session, mailbox)
        await _not_sent(session, email, mailbox, provider, exc)
        return
    if session.in_transaction():  # a refreshed token; and SQLite has one writer at a time
        await session.commit()
    thread_id = provider.last_thread_id or email.thread_id
    await _record_sent(sent, email.id, message_id, mailbox.provider.value, thread_id)


async def _deliver(
    provider: MailProvider, email: ScheduledEmail, mailbox: Mailbox, attachment: Attachment | None
) -> str:
    """The one provider call of a send; returns the provider's message id."""
    if email.draft_id is not None and provider.supports_drafts:
        return await provider.send_draft(email.draft_id)
    if email.mime is not None:
        return await provider.send(
            EncodedMessage(
                data=email.mime,
                message_id=email.rfc822_message_id,
                sender=mailbox.address,
                recipients=(email.to_address,),
            ).dated(utcnow()),
            thread_id=email.thread_id,  # a follow-up: the thread of the step before
        )
    return await provider.send(build_mime(email, mailbox, attachment), thread_id=email.thread_id)


async def _not_sent(
    session: AsyncSession,
    email: ScheduledEmail,
    mailbox: Mailbox,
    provider: MailProvider,
    exc: AppError,
) -> None:
    """The outcome of a send the provider did not confirm, by what went wrong."""
    if isinstance(exc, SendOutcomeUnknown):
        await _reconcile(session, email, mailbox, provider, str(exc))
    elif isinstance(exc, GmailRateLimited):
        _retry_later(email, str(exc))
    elif isinstance(exc, GmailDailyLimitExceeded):
        retry_at = exc.extra.get("retry_at")
        _retry_later(email, str(exc), at=datetime.fromisoformat(retry_at) if retry_at else None)
        email.attempts -= 1
        _count_deferred(session, mailbox, 1)  # Gmail's own daily cap
    elif isinstance(exc, MailboxUnavailable):
        _retry_later(email, str(exc))
        email.attempts -= 1
    elif isinstance(exc, NotFound):
        # The draft is gone: sent by hand, or deleted by the user in the mailbox.
        await _reconcile(session, email, mailbox, provider, f"draft gone: {exc}")
    elif isinstance(exc, NothingSent):  # nothing left the process: safe to send again later
        await retry_or_fail(session, email, mailbox, str(exc))
    elif isinstance(exc, RecipientBounced):  # an SMTP 5xx at RCPT or DATA
        await _bounce(session, email, mailbox, str(exc))
    else:  # refused for good (MessageRefused) or not sendable at all
        await _fail(session, email, mailbox, str(exc))


class _NotStarted(Exception):
    """The process is stopping: a claimed email's send did not start."""


@dataclass(frozen=True)
class _Claimed:
    email: ScheduledEmail  # detached, with its stored MIME
    mailbox: Mailbox  # detached
    attachment: Attachment | None  # for a message built at send time


_CLAIMED = (
    select(ScheduledEmail, Mailbox, Campaign.resume_id)
    .join(Mailbox, Mailbox.id == ScheduledEmail.mailbox_id)
    .join(Campaign, Campaign.id == ScheduledEmail.campaign_id)
    .where(
        ScheduledEmail.id.in_(bindparam("ids", expanding=True)),
        ScheduledEmail.status == EmailStatus.sending,
    )
    .options(undefer(ScheduledEmail.mime))
)


async def _load_claimed(database: Database, ids: list[uuid.UUID]) -> list[_Claimed]:
    """The claimed emails with their mailboxes, in a session of their own."""
    if not ids:
        return []
    async with database.session() as session:
        return await _load_claimed_in(session, ids)


async def _load_claimed_in(session: AsyncSession, ids: list[uuid.UUID]) -> list[_Claimed]:
    """The claimed emails with their mailboxes, in one query per chunk (not one per email),
    and each attached resume read from storage once (not once per email)."""
    claimed: list[_Claimed] = []
    attachments: dict[uuid.UUID, Attachment | None] = {}
    for start in range(0, len(ids), 500):
        rows = await session.execute(_CLAIMED, {"ids": ids[start : start + 500]})
        for email, mailbox, resume_id in rows:
            attachment = None
            if email.mime is None and email.draft_id is None and resume_id is not None:
                if resume_id not in attachments:
                    attachments[resume_id] = await resume_attachment(session, resume_id)
                attachment = attachments[resume_id]
            claimed.append(_Claimed(email, mailbox, attachment))
    by_id = {c.email.id: c for c in claimed}
    return [by_id[email_id] for email_id in ids if email_id in by_id]


async def _send_claimed(
    database: Database,
    claimed: _Claimed,
    sent: SentRecorder,
    slot: AbstractAsyncContextManager[object] | None = None,
) -> None:
    async with database.session() as session:
        # The loaded rows themselves, not copies (copies only for a failure, see
        # send_one): the send holds no transaction (and no pooled connection) while it
        # waits for the provider.
        await send_one(session, claimed.email, claimed.mailbox, claimed.attachment, sent, slot=slot)


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
            if stop_requested():
                break
            async with database.session() as session:
                claimed += await claim_due_emails(session, mailbox_id=mailbox_id, now=now)
        for email in await _load_claimed(database, claimed):
            if stop_requested():
                await release_claims(database, [email.email.id])
                continue
            await _send_claimed(database, email, sent)
            await sent.drain()  # strictly one at a time (tests share one connection)
    else:
        # Sends wait on the network, so they run side by side (each its own
        # session), and a mailbox's sends start while the next mailbox is claimed;
        # one failing send must not stop the others. The next mailbox is claimed only
        # while fewer than ``ahead`` claimed emails wait for a slot: a claimed email
        # goes out soon after its claim (well within its lease, however slow the
        # provider), and a tick holds a few claimed rows in memory rather than all of
        # them (which kept them alive into the collector's oldest generation). Enough
        # wait that the sends never run dry while the next claims make their round
        # trips, which are slow when the database shares a busy machine.
        limit = asyncio.Semaphore(concurrency)
        ahead = 5 * concurrency
        waiting = 0
        room = asyncio.Event()

        def left_waiting() -> None:
            nonlocal waiting
            waiting -= 1
            if waiting < ahead:
                room.set()

        async def send(email: _Claimed) -> None:
            # Everything but the provider call runs outside the slot: a slot freed by
            # one send goes straight to the next one's provider call, so the client's
            # connections are not left idle while a send records or prepares.
            took_slot = False

            @asynccontextmanager
            async def slot() -> AsyncIterator[None]:
                nonlocal took_slot
                async with limit:
                    took_slot = True
                    left_waiting()
                    if stop_requested():
                        raise _NotStarted
                    yield

            try:
                await _send_claimed(database, email, sent, slot())
            except _NotStarted:  # claimed, not started: another tick sends it
                await release_claims(database, [email.email.id])
            finally:
                if not took_slot:  # ended before its provider call (mailbox unavailable)
                    left_waiting()

        started: list[uuid.UUID] = []
        in_flight: list[asyncio.Task[None]] = []
        try:
            # The claims run one after another on one connection, checked out (and
            # pre-pinged) once per tick rather than once per mailbox.
            async with database.pinned() as claims:
                for mailbox_id in mailbox_ids:
                    while waiting >= ahead:
                        room.clear()
                        await room.wait()
                    if stop_requested():  # stop claiming; what is in flight finishes
                        break
                    # Claimed and loaded in one transaction: the next mailbox's claim
                    # waits on this chain of round trips, so it is kept short.
                    async with claims.session() as session:
                        ids = await claim_due_emails(session, mailbox_id=mailbox_id, now=now)
                        batch = await _load_claimed_in(session, ids) if ids else []
                    claimed += ids
                    started += [email.email.id for email in batch]
                    waiting += len(batch)
                    in_flight += [asyncio.create_task(send(email)) for email in batch]
        finally:
            results = await asyncio.gather(*in_flight, return_exceptions=True)
            await sent.drain()
        for email_id, result in zip(started, results, strict=True):
            if isinstance(result, BaseException):
                log.error(
                    "send failed unexpectedly; its lease will be reconciled",
                    email_id=str(email_id),
                    error=repr(result),
                )
    await after_sends(database, claimed)
    await _complete_finished_campaigns(database)
    return len(claimed)
