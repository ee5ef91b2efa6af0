"""The fake Gmail answers 500, 429 and times out, at random and on purpose.

Sends are never retried blindly: a 5xx or a timeout on a send is reconciled
first (the draft still there → not sent; gone → look for it among SENT), a 429
is retried later, and an email that keeps failing ends ``failed`` with its
refund. Whatever happens, Gmail never holds a message twice and no email is lost.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.admin.service import admin_service
from outreach.campaign import sending
from outreach.config import Settings, use_settings
from outreach.kit.clock import Clock
from outreach.kit.db import Database
from outreach.kit.errors import AppError
from outreach.models import FailedJob, MailboxMode
from outreach.models.campaign import EmailStatus
from tests.campaign.test_gmail import START
from tests.conftest import create_user
from tests.fakes.gmail import FakeGmail
from tests.fakes.google import FakeGoogle
from tests.faults.conftest import outbox_campaign, prepared_gmail_campaign
from tests.faults.invariants import (
    Summary,
    check_invariants,
    gmail_deliveries,
    outbox_deliveries,
)

SEND = "gmail.users.drafts.send"
READS = ["gmail.users.drafts.get", "gmail.users.messages.list", "gmail.users.messages.get"]


async def ticks(database: Database, clock: Clock, count: int, step: timedelta) -> int:
    """Run ``count`` send ticks ``step`` apart; returns how many failed (the job would
    be retried by the broker, like a tick that raised)."""
    failed = 0
    for _ in range(count):
        try:
            await sending.send_due_emails(database)
        except AppError:
            failed += 1
        clock.advance(step)
    return failed


async def settle(session: AsyncSession, fake_gmail: FakeGmail) -> Summary:
    session.expire_all()
    return await check_invariants(session, delivered=gmail_deliveries(fake_gmail))


def arm_random_failures(fake_gmail: FakeGmail, rng: random.Random) -> None:
    """Before a tick: the next send may fail before or after Gmail sent it, be rate
    limited past the client's own retries, and the reads that reconcile may fail too."""
    kind = rng.choice(["ok", "500", "500-applied", "503-applied", "429", "ok"])
    if kind == "429":
        fake_gmail.fail(SEND, status=429, retry_after=0, times=5)
    elif kind != "ok":
        status = int(kind[:3])
        fake_gmail.fail(SEND, status=status, apply=kind.endswith("applied"))
    if rng.random() < 0.4:
        fake_gmail.fail(rng.choice(READS), status=rng.choice([500, 429]), times=rng.randint(1, 3))


@pytest.mark.parametrize("seed", range(8))
async def test_random_500_429_storm_sends_each_email_once(
    seed: int,
    database: Database,
    session: AsyncSession,
    gmail_faults: Settings,
    fake_google: FakeGoogle,
    fake_gmail: FakeGmail,
    frozen_clock: Clock,
) -> None:
    rng = random.Random(seed)
    await prepared_gmail_campaign(database, session, fake_google, frozen_clock, emails=4)
    frozen_clock.freeze(START)
    for _ in range(10):
        arm_random_failures(fake_gmail, rng)
        await ticks(database, frozen_clock, 1, timedelta(minutes=20))
    fake_gmail.failures.clear()  # Gmail recovers
    await ticks(database, frozen_clock, 4, timedelta(minutes=20))

    summary = await settle(session, fake_gmail)
    # Four emails, each sent once or failed with its refund after its last attempt.
    assert summary.statuses[EmailStatus.sent] + summary.statuses[EmailStatus.failed] == 4
    assert summary.delivered == summary.statuses[EmailStatus.sent]
    failed_jobs = await session.scalar(select(func.count()).select_from(FailedJob))
    assert failed_jobs == summary.statuses[EmailStatus.failed]


async def test_500_until_the_last_attempt_fails_refunded_and_an_admin_retry_sends_once(
    database: Database,
    session: AsyncSession,
    gmail_faults: Settings,
    fake_google: FakeGoogle,
    fake_gmail: FakeGmail,
    frozen_clock: Clock,
) -> None:
    campaign_id, user_id = await prepared_gmail_campaign(
        database, session, fake_google, frozen_clock, emails=1
    )
    fake_gmail.fail(SEND, status=500, times=sending.MAX_ATTEMPTS)  # never applied
    frozen_clock.freeze(START)
    await ticks(database, frozen_clock, sending.MAX_ATTEMPTS + 2, timedelta(hours=1))
    summary = await settle(session, fake_gmail)
    assert summary.statuses == {EmailStatus.failed: 1}
    assert summary.balances[user_id] == 30
    assert fake_gmail.called(SEND) == sending.MAX_ATTEMPTS

    # Gmail is back; an admin retries the failed send: charged again, a new email.
    admin = await create_user(session, "admin@example.com", role="admin")
    failed = await session.scalar(select(FailedJob))
    assert failed is not None
    await admin_service.retry_failed_job(session, failed_job_id=failed.id, actor_id=admin.id)
    await sending.prepare_campaign_emails(database, campaign_id)
    await ticks(database, frozen_clock, 3, timedelta(hours=1))
    summary = await settle(session, fake_gmail)
    assert summary.statuses == {EmailStatus.failed: 1, EmailStatus.sent: 1}
    assert summary.delivered == 1
    assert summary.balances[user_id] == 30 - 1


async def test_429_for_a_day_defers_and_never_fails(
    database: Database,
    session: AsyncSession,
    gmail_faults: Settings,
    fake_google: FakeGoogle,
    fake_gmail: FakeGmail,
    frozen_clock: Clock,
) -> None:
    await prepared_gmail_campaign(database, session, fake_google, frozen_clock, emails=2)
    fake_gmail.fail(SEND, status=429, retry_after=0, times=10_000)
    frozen_clock.freeze(START)
    await ticks(database, frozen_clock, 4, timedelta(hours=1))
    summary = await settle(session, fake_gmail)
    assert summary.statuses == {EmailStatus.ready: 2}  # waiting, not failed
    fake_gmail.failures.clear()
    await ticks(database, frozen_clock, 4, timedelta(hours=1))
    summary = await settle(session, fake_gmail)
    assert summary.statuses == {EmailStatus.sent: 2}


@pytest.fixture
def impatient(gmail_faults: Settings) -> Iterator[Settings]:
    """The Gmail client gives up after 0.2 s."""
    changed = gmail_faults.model_copy(update={"gmail_timeout_seconds": 0.2})
    use_settings(changed)
    yield changed
    use_settings(gmail_faults)


async def gmail_finishes(fake_gmail: FakeGmail, sent: int) -> None:
    """Wait (bounded) until the fake Gmail, still working after our client gave up,
    has sent ``sent`` messages."""
    for _ in range(200):
        if len(gmail_deliveries(fake_gmail)) >= sent:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the fake Gmail never finished the slow send")


async def test_a_send_that_times_out_but_went_out_is_reconciled_once(
    database: Database,
    session: AsyncSession,
    impatient: Settings,
    fake_google: FakeGoogle,
    fake_gmail: FakeGmail,
    frozen_clock: Clock,
) -> None:
    await prepared_gmail_campaign(database, session, fake_google, frozen_clock, emails=1)
    fake_gmail.delay(SEND, 0.4)
    frozen_clock.freeze(START)
    await ticks(database, frozen_clock, 1, timedelta(minutes=10))
    await gmail_finishes(fake_gmail, 1)  # Gmail sent it after we stopped listening
    fake_gmail.delays.clear()
    await ticks(database, frozen_clock, 3, timedelta(minutes=10))
    summary = await settle(session, fake_gmail)
    assert summary.statuses == {EmailStatus.sent: 1}
    assert fake_gmail.called(SEND) <= 2  # the retry found the draft gone: never resent


async def test_send_only_timeout_ends_unknown_never_resent(
    database: Database,
    session: AsyncSession,
    impatient: Settings,
    fake_google: FakeGoogle,
    fake_gmail: FakeGmail,
    frozen_clock: Clock,
) -> None:
    _, user_id = await prepared_gmail_campaign(
        database, session, fake_google, frozen_clock, emails=2, mode=MailboxMode.send_only
    )
    fake_gmail.delay("gmail.users.messages.send", 0.4)
    frozen_clock.freeze(START)
    await ticks(database, frozen_clock, 1, timedelta(minutes=10))
    await gmail_finishes(fake_gmail, 1)
    fake_gmail.delays.clear()
    await ticks(database, frozen_clock, 4, timedelta(minutes=10))
    summary = await settle(session, fake_gmail)
    # The first timed out: unknown (shown to the user, not refunded, never resent).
    assert summary.statuses == {EmailStatus.unknown: 1, EmailStatus.sent: 1}
    assert summary.delivered == 2
    assert summary.balances[user_id] == 30 - 2


async def test_reads_failing_for_one_mailbox_do_not_stop_the_others(
    database: Database,
    session: AsyncSession,
    gmail_faults: Settings,
    fake_google: FakeGoogle,
    fake_gmail: FakeGmail,
    frozen_clock: Clock,
) -> None:
    """A Gmail send whose outcome is unknown cannot be reconciled while Gmail's reads
    fail; it waits (still ``sending``), and the other mailboxes keep sending."""
    await prepared_gmail_campaign(database, session, fake_google, frozen_clock, emails=1)
    other = await outbox_campaign(session, start_at=START + timedelta(minutes=30))
    await sending.prepare_campaign_emails(database, other)
    fake_gmail.fail(SEND, status=500)  # not sent, but we cannot know
    fake_gmail.fail("gmail.users.drafts.get", status=500, times=10_000)
    frozen_clock.freeze(START)
    await ticks(database, frozen_clock, 1, sending.LEASE + timedelta(minutes=30))
    await ticks(database, frozen_clock, 2, timedelta(minutes=10))
    outbox = gmail_faults.outbox_path
    summary = await check_invariants(
        session,
        delivered=gmail_deliveries(fake_gmail) + outbox_deliveries(outbox),
        in_flight=True,
    )
    assert summary.statuses == {EmailStatus.sending: 1, EmailStatus.sent: 2}

    fake_gmail.failures.clear()  # Gmail answers again: reconciled, then sent once
    await ticks(database, frozen_clock, 4, timedelta(minutes=20))
    summary = await check_invariants(
        session, delivered=gmail_deliveries(fake_gmail) + outbox_deliveries(outbox)
    )
    assert summary.statuses == {EmailStatus.sent: 3}
