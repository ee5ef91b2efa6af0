"""Every email ends in a final, explained, refunded-where-due status, and one bad
recipient never stalls the campaign.

A permanent refusal by the provider (Gmail 400 on ``drafts.create`` or
``messages.send``, an SMTP 550 at RCPT) fails that email with the provider's reason
and refunds it; the others go out and the campaign completes. A failure before
anything left the process (token endpoint 500, SMTP connection refused) is tried
again later, and fails (refunded) only after the retry window. A preparation job
that died leaves no email without a next try: the tick's sweep restarts it.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from email import policy
from email.parser import BytesParser
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from prometheus_client import REGISTRY
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.campaign import sending, views
from outreach.campaign.schemas import CampaignCreate
from outreach.campaign.service import campaign_service
from outreach.config import Settings, use_settings
from outreach.credits.service import credit_service
from outreach.kit.clock import Clock, utcnow
from outreach.kit.crypto import encrypt_secret
from outreach.kit.db import Database
from outreach.models import (
    EmailEvent,
    EmailEventKind,
    EmailEventSource,
    Mailbox,
    MailboxMode,
    MailboxProvider,
    MailboxStatus,
    SmtpSecurity,
    User,
)
from outreach.models.campaign import Campaign, CampaignStatus, EmailStatus, ScheduledEmail
from outreach.recipient.suppression import suppression_service
from tests.campaign.conftest import make_list, make_template
from tests.campaign.test_gmail import GMAIL, START, scheduled_campaign
from tests.conftest import create_user, wait_for_jobs
from tests.fakes.gmail import FakeGmail
from tests.fakes.google import FakeGoogle
from tests.faults.conftest import draft_campaign
from tests.faults.invariants import check_invariants, gmail_deliveries, outbox_deliveries
from tests.faults.test_gmail import ticks

BAD = "lead2@firm2.com"  # the one recipient of five the provider refuses
STEP = timedelta(minutes=1)  # emails are due a minute apart from START


async def emails_of(session: AsyncSession, campaign_id: uuid.UUID) -> dict[str, ScheduledEmail]:
    session.expire_all()
    rows = await session.scalars(
        select(ScheduledEmail).where(ScheduledEmail.campaign_id == campaign_id)
    )
    return {email.to_address: email for email in rows}


async def assert_one_failed_four_sent(
    session: AsyncSession, campaign_id: uuid.UUID, user_id: Any, reason: str
) -> None:
    """4 sent, BAD failed with ``reason`` and refunded, the campaign completed and shows it."""
    emails = await emails_of(session, campaign_id)
    assert {a: e.status for a, e in emails.items()} == {
        a: EmailStatus.failed if a == BAD else EmailStatus.sent for a in emails
    }
    failed = emails[BAD]
    assert failed.refunded
    assert failed.last_error is not None
    assert reason in failed.last_error
    # 30 credits, 5 charged, 1 given back.
    assert await credit_service.get_balance(session, user_id=user_id) == 26
    campaign = await session.get(Campaign, campaign_id)
    assert campaign is not None
    assert campaign.status == CampaignStatus.completed
    shown = await views.campaign_out(session, campaign)
    assert (shown.counts.sent, shown.counts.failed, shown.counts.total) == (4, 1, 5)
    assert shown.last_error is not None
    assert shown.last_error.to_address == BAD
    assert shown.last_error.status == EmailStatus.failed
    assert reason in shown.last_error.error


# -- Gmail --------------------------------------------------------------------------


async def gmail_campaign(
    session: AsyncSession, fake_google: FakeGoogle, **options: Any
) -> tuple[uuid.UUID, uuid.UUID]:
    """``scheduled_campaign`` (30 credits, Kolkata, due a minute apart from START) by ids."""
    campaign, user = await scheduled_campaign(session, fake_google, **options)
    return campaign.id, user.id  # type: ignore[attr-defined]


async def test_a_draft_gmail_refuses_for_one_recipient_fails_alone_refunded(
    database: Database,
    session: AsyncSession,
    gmail_faults: Settings,
    fake_google: FakeGoogle,
    fake_gmail: FakeGmail,
    frozen_clock: Clock,
) -> None:
    fake_gmail.refuse("gmail.users.drafts.create", to=BAD, message="Invalid To header")
    frozen_clock.freeze(START - timedelta(hours=1))
    campaign_id, user_id = await gmail_campaign(session, fake_google, emails=5)
    # Preparation goes past the refused draft: four drafts, one failed email.
    assert await sending.prepare_campaign_emails(database, campaign_id) == 4
    assert len(fake_gmail.mailbox(GMAIL).drafts) == 4
    frozen_clock.freeze(START)
    await ticks(database, frozen_clock, 8, STEP)

    await assert_one_failed_four_sent(session, campaign_id, user_id, "Invalid To header")
    assert fake_gmail.called("gmail.users.drafts.create") == 5  # the refusal is not retried
    summary = await check_invariants(session, delivered=gmail_deliveries(fake_gmail))
    assert summary.delivered == 4


async def test_a_message_gmail_refuses_for_one_recipient_fails_alone_refunded(
    database: Database,
    session: AsyncSession,
    gmail_faults: Settings,
    fake_google: FakeGoogle,
    fake_gmail: FakeGmail,
    frozen_clock: Clock,
) -> None:
    fake_gmail.refuse("gmail.users.messages.send", to=BAD, message="Invalid To header")
    frozen_clock.freeze(START - timedelta(hours=1))
    campaign_id, user_id = await gmail_campaign(
        session, fake_google, emails=5, mode=MailboxMode.send_only
    )
    await sending.prepare_campaign_emails(database, campaign_id)
    frozen_clock.freeze(START)
    await ticks(database, frozen_clock, 8, STEP)

    await assert_one_failed_four_sent(session, campaign_id, user_id, "Invalid To header")
    assert fake_gmail.called("gmail.users.messages.send") == 5
    await check_invariants(session, delivered=gmail_deliveries(fake_gmail))


async def test_one_token_endpoint_500_sends_on_a_later_tick(
    database: Database,
    session: AsyncSession,
    gmail_faults: Settings,
    fake_google: FakeGoogle,
    fake_gmail: FakeGmail,
    frozen_clock: Clock,
) -> None:
    frozen_clock.freeze(START - timedelta(hours=1))
    campaign_id, user_id = await gmail_campaign(session, fake_google, emails=1)
    await sending.prepare_campaign_emails(database, campaign_id)
    # At START the access token (an hour old) needs a refresh, and Google answers 500.
    fake_google.oauth.token_status = 500
    frozen_clock.freeze(START)
    await sending.send_due_emails(database)
    (email,) = (await emails_of(session, campaign_id)).values()
    assert email.status == EmailStatus.ready  # not failed: nothing was sent
    assert email.last_error is not None
    assert "token" in email.last_error
    assert email.next_attempt_at == START + timedelta(minutes=1)
    assert fake_gmail.called("gmail.users.drafts.send") == 0

    fake_google.oauth.token_status = None  # Google recovers
    await sending.send_due_emails(database)  # too early: the retry is planned later
    assert fake_gmail.called("gmail.users.drafts.send") == 0
    frozen_clock.advance(timedelta(minutes=1))
    await sending.send_due_emails(database)
    (email,) = (await emails_of(session, campaign_id)).values()
    assert email.status == EmailStatus.sent
    assert not email.refunded
    assert await credit_service.get_balance(session, user_id=user_id) == 29
    summary = await check_invariants(session, delivered=gmail_deliveries(fake_gmail))
    assert summary.delivered == 1


async def test_a_token_endpoint_down_during_preparation_retries_the_campaign_later(
    database: Database,
    session: AsyncSession,
    gmail_faults: Settings,
    fake_google: FakeGoogle,
    fake_gmail: FakeGmail,
    frozen_clock: Clock,
) -> None:
    frozen_clock.freeze(START - timedelta(hours=2))
    campaign_id, _ = await gmail_campaign(session, fake_google, emails=3)
    frozen_clock.advance(timedelta(minutes=59, seconds=30))  # the token is due a refresh
    fake_google.oauth.token_status = 503
    assert await sending.prepare_campaign_emails(database, campaign_id) == 0
    emails = (await emails_of(session, campaign_id)).values()
    # All three wait together for the same later try; none failed, none has a draft.
    assert {e.status for e in emails} == {EmailStatus.pending}
    retry_at = {e.next_attempt_at for e in emails}
    assert len(retry_at) == 1
    assert None not in retry_at
    assert fake_gmail.called("gmail.users.drafts.create") == 0

    fake_google.oauth.token_status = None
    frozen_clock.advance(timedelta(minutes=1))
    # The tick's sweep would enqueue the job; here the job is run as the worker would.
    await sending.prepare_campaign_emails(database, campaign_id)
    emails = (await emails_of(session, campaign_id)).values()
    assert {e.status for e in emails} == {EmailStatus.ready}
    assert {e.retry_deadline for e in emails} == {None}
    await check_invariants(session, delivered=gmail_deliveries(fake_gmail))


async def test_thread_ids_are_stored_and_reconciliation_finds_the_send_by_thread(
    database: Database,
    session: AsyncSession,
    gmail_faults: Settings,
    fake_google: FakeGoogle,
    fake_gmail: FakeGmail,
    frozen_clock: Clock,
) -> None:
    frozen_clock.freeze(START - timedelta(hours=1))
    campaign_id, _ = await gmail_campaign(session, fake_google, emails=2)
    await sending.prepare_campaign_emails(database, campaign_id)
    box = fake_gmail.mailbox(GMAIL)
    emails = await emails_of(session, campaign_id)
    drafts = {e.draft_id: e.thread_id for e in emails.values()}
    assert drafts == {draft_id: m.thread_id for draft_id, m in box.drafts.items()}

    # The first send goes out, then Gmail answers 500: the outcome is unknown.
    fake_gmail.fail("gmail.users.drafts.send", status=500, apply=True)
    fake_gmail.rewrite_message_id = True
    frozen_clock.freeze(START)
    await ticks(database, frozen_clock, 4, STEP)
    emails = await emails_of(session, campaign_id)
    sent = {m.id: m.thread_id for m in fake_gmail.sent(GMAIL)}
    assert {e.provider_message_id: e.thread_id for e in emails.values()} == sent
    assert {e.status for e in emails.values()} == {EmailStatus.sent}
    # Found by its thread in the SENT list: no message's headers had to be read.
    assert fake_gmail.called("gmail.users.messages.list") == 1
    assert fake_gmail.called("gmail.users.messages.get") == 0
    await check_invariants(session, delivered=gmail_deliveries(fake_gmail))


async def test_messages_send_stores_the_thread_gmail_gives(
    database: Database,
    session: AsyncSession,
    gmail_faults: Settings,
    fake_google: FakeGoogle,
    fake_gmail: FakeGmail,
    frozen_clock: Clock,
) -> None:
    frozen_clock.freeze(START - timedelta(hours=1))
    campaign_id, _ = await gmail_campaign(session, fake_google, mode=MailboxMode.send_only)
    await sending.prepare_campaign_emails(database, campaign_id)
    frozen_clock.freeze(START)
    await ticks(database, frozen_clock, 4, STEP)
    emails = await emails_of(session, campaign_id)
    sent = {m.id: m.thread_id for m in fake_gmail.sent(GMAIL)}
    assert len(sent) == 3
    assert {e.provider_message_id: e.thread_id for e in emails.values()} == sent


# -- SMTP ---------------------------------------------------------------------------

SMTP_USER, SMTP_PASSWORD = "asha", "app-password"


@dataclass
class RefusingSmtp:
    """An SMTP server that answers 550 at RCPT for the addresses in ``refused``."""

    refused: set[str] = field(default_factory=set)
    messages: list[Envelope] = field(default_factory=list)

    async def handle_RCPT(
        self, server: Any, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if address.lower() in self.refused:
            return "550 5.1.1 <" + address + ">: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        self.messages.append(envelope)
        return "250 Message accepted for delivery"

    def delivered(self) -> list[str]:
        """Our Message-ID of each message received, read from the bytes, strictly."""
        ids = []
        for envelope in self.messages:
            assert isinstance(envelope.content, bytes)
            message = BytesParser(policy=policy.strict).parsebytes(envelope.content)
            ids.append(str(message["Message-ID"]))
        return ids


def _authenticate(
    server: Any, session: Session, envelope: Envelope, mechanism: str, data: Any
) -> AuthResult:
    ok = (
        isinstance(data, LoginPassword)
        and data.login.decode() == SMTP_USER
        and data.password.decode() == SMTP_PASSWORD
    )
    return AuthResult(success=ok, handled=ok)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class SmtpHost:
    """A port on 127.0.0.1 where an SMTP server is listening, or (stopped) nothing is."""

    def __init__(self, handler: RefusingSmtp) -> None:
        self.handler = handler
        self.port = _free_port()
        self._controller: Controller | None = None

    def start(self) -> None:
        self._controller = Controller(
            self.handler,
            hostname="127.0.0.1",
            port=self.port,
            authenticator=_authenticate,
            auth_require_tls=False,
        )
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


@pytest.fixture
def smtp_host(settings: Settings) -> Iterator[SmtpHost]:
    """A stopped SMTP host (start it in the test) and settings that may reach it."""
    use_settings(
        settings.model_copy(update={"smtp_allow_private_hosts": True, "smtp_timeout_seconds": 5})
    )
    host = SmtpHost(RefusingSmtp())
    yield host
    host.stop()
    use_settings(settings)


async def smtp_campaign(
    session: AsyncSession, port: int, *, emails: int = 5
) -> tuple[uuid.UUID, uuid.UUID]:
    """A scheduled campaign of ``emails`` through an SMTP mailbox on ``port``, its
    messages prepared an hour before START (30 credits); returns (campaign, user) ids."""
    user = await create_user(session, "asha@example.com", balance=30)
    mailbox = Mailbox(
        user_id=user.id,
        provider=MailboxProvider.smtp,
        address="asha@example.com",
        status=MailboxStatus.active,
        daily_cap=250,
        timezone="Asia/Kolkata",
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_security=SmtpSecurity.none,
        smtp_username=SMTP_USER,
        smtp_password_encrypted=encrypt_secret(SMTP_PASSWORD),
    )
    session.add(mailbox)
    await session.flush()
    rows = [{"email": f"lead{n}@firm{n}.com", "company": f"Firm {n}"} for n in range(emails)]
    recipients = await make_list(session, user, rows)
    campaign = await campaign_service.create(
        session,
        user=user,
        data=CampaignCreate(
            name="SMTP run",
            mailbox_id=mailbox.id,
            template_id=await make_template(session, user),
            list_id=recipients.id,
            start_at=START,
            min_gap_seconds=60,
            jitter_seconds=0,
        ),
    )
    await campaign_service.schedule(session, user=user, campaign=campaign)
    await session.flush()
    return campaign.id, user.id


async def test_an_smtp_550_at_rcpt_for_one_recipient_fails_alone_refunded(
    database: Database, session: AsyncSession, smtp_host: SmtpHost, frozen_clock: Clock
) -> None:
    smtp_host.handler.refused.add(BAD)
    smtp_host.start()
    frozen_clock.freeze(START - timedelta(hours=1))
    campaign_id, user_id = await smtp_campaign(session, smtp_host.port)
    await sending.prepare_campaign_emails(database, campaign_id)
    frozen_clock.freeze(START)
    await ticks(database, frozen_clock, 8, STEP)

    await assert_one_failed_four_sent(session, campaign_id, user_id, "550")
    assert len(smtp_host.handler.messages) == 4
    # A 5xx at RCPT is a bounce, recorded at once: the address is suppressed for the sender.
    events = (
        await session.execute(
            select(EmailEvent.recipient_address, EmailEvent.kind, EmailEvent.source)
        )
    ).all()
    assert events == [(BAD, EmailEventKind.bounced, EmailEventSource.smtp)]
    assert await suppression_service.is_suppressed(session, user_id=user_id, email=BAD)
    await check_invariants(session, delivered=smtp_host.handler.delivered())


async def test_smtp_refusing_connections_for_one_tick_sends_on_a_later_tick(
    database: Database, session: AsyncSession, smtp_host: SmtpHost, frozen_clock: Clock
) -> None:
    frozen_clock.freeze(START - timedelta(hours=1))
    campaign_id, user_id = await smtp_campaign(session, smtp_host.port, emails=1)
    await sending.prepare_campaign_emails(database, campaign_id)
    frozen_clock.freeze(START)
    await sending.send_due_emails(database)  # nothing listens on the port
    (email,) = (await emails_of(session, campaign_id)).values()
    assert email.status == EmailStatus.ready
    assert email.last_error is not None
    assert "did not accept a connection" in email.last_error

    smtp_host.start()
    await ticks(database, frozen_clock, 3, STEP)
    (email,) = (await emails_of(session, campaign_id)).values()
    assert email.status == EmailStatus.sent
    assert not email.refunded
    assert await credit_service.get_balance(session, user_id=user_id) == 29
    assert len(smtp_host.handler.messages) == 1
    await check_invariants(session, delivered=smtp_host.handler.delivered())


async def test_a_server_that_stays_unreachable_fails_the_email_after_the_retry_window(
    database: Database, session: AsyncSession, smtp_host: SmtpHost, frozen_clock: Clock
) -> None:
    window = timedelta(seconds=3600)  # OUTREACH_SEND_RETRY_WINDOW_SECONDS, the default
    frozen_clock.freeze(START - timedelta(hours=1))
    campaign_id, user_id = await smtp_campaign(session, smtp_host.port, emails=1)
    await sending.prepare_campaign_emails(database, campaign_id)
    frozen_clock.freeze(START)
    # Ticks every 5 minutes: still retried just before the window ends...
    await ticks(database, frozen_clock, 12, timedelta(minutes=5))
    (email,) = (await emails_of(session, campaign_id)).values()
    assert email.status == EmailStatus.ready
    assert email.retry_deadline == START + window
    tries = email.attempts
    assert 4 <= tries <= 8  # a doubling delay, not a try per tick
    # ...and failed, refunded, once it is over.
    await ticks(database, frozen_clock, 4, timedelta(minutes=5))
    (email,) = (await emails_of(session, campaign_id)).values()
    assert email.status == EmailStatus.failed
    assert email.refunded
    assert email.last_error is not None
    assert "after the retry window" in email.last_error
    assert await credit_service.get_balance(session, user_id=user_id) == 30
    campaign = await session.get(Campaign, campaign_id)
    assert campaign is not None
    assert campaign.status == CampaignStatus.completed
    await check_invariants(session, delivered=smtp_host.handler.delivered())


# -- a preparation job that died ------------------------------------------------------


class JobKilled(BaseException):
    """Not an Exception: the worker process died mid-job."""


async def schedule(database: Database, campaign_id: uuid.UUID, user_id: uuid.UUID) -> None:
    """Schedule the draft campaign (its preparation job runs after the commit)."""
    async with database.session() as session:
        campaign = await session.get(Campaign, campaign_id)
        user = await session.get(User, user_id)
        assert campaign is not None
        assert user is not None
        await campaign_service.schedule(session, user=user, campaign=campaign)
    await wait_for_jobs()


async def test_the_sweep_restarts_a_preparation_that_died_midway(
    committing_database: Database,
    outbox_settings: Settings,
    jobs_on: None,
    frozen_clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    frozen_clock.freeze(START - timedelta(hours=2))
    draft = await draft_campaign(committing_database, emails=5, balance=20)
    real_prepare = sending.prepare_campaign_emails
    real_prepare_one = sending._prepare_one
    prepared = {"n": 0}

    async def dies_after_two(*args: Any) -> Any:
        if prepared["n"] == 2:
            raise JobKilled
        prepared["n"] += 1
        return await real_prepare_one(*args)

    async def lost(database: Database, campaign_id: uuid.UUID) -> int:
        return 0  # the job scheduling enqueues is lost

    monkeypatch.setattr(sending, "prepare_campaign_emails", lost)
    await schedule(committing_database, draft.campaign_id, draft.user_id)
    monkeypatch.setattr(sending.preparing, "_prepare_one", dies_after_two)
    with pytest.raises(JobKilled):
        await real_prepare(committing_database, draft.campaign_id)
    monkeypatch.undo()

    async with committing_database.session() as session:
        emails = await emails_of(session, draft.campaign_id)
        assert sorted(e.status for e in emails.values()) == sorted(
            [EmailStatus.ready] * 2 + [EmailStatus.pending] * 3
        )
    # Within the stall bound the sweep leaves the job alone; past it, it starts it again.
    frozen_clock.advance(timedelta(minutes=10))
    await sending.send_due_emails(committing_database)
    await wait_for_jobs()
    async with committing_database.session() as session:
        emails = await emails_of(session, draft.campaign_id)
        assert sum(e.status == EmailStatus.pending for e in emails.values()) == 3
        await check_invariants(session, delivered=[])
    frozen_clock.advance(timedelta(minutes=6))
    await sending.send_due_emails(committing_database)
    await wait_for_jobs()
    async with committing_database.session() as session:
        emails = await emails_of(session, draft.campaign_id)
        assert {e.status for e in emails.values()} == {EmailStatus.ready}
        await check_invariants(session, delivered=[])

    frozen_clock.freeze(START)
    await ticks(committing_database, frozen_clock, 8, STEP)
    async with committing_database.session() as session:
        emails = await emails_of(session, draft.campaign_id)
        assert {e.status for e in emails.values()} == {EmailStatus.sent}
        outbox = outbox_deliveries(outbox_settings.outbox_path)
        summary = await check_invariants(session, delivered=outbox)
        assert summary.delivered == 5


async def test_emails_whose_preparation_never_completes_fail_refunded_after_the_window(
    committing_database: Database,
    outbox_settings: Settings,
    jobs_on: None,
    frozen_clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    frozen_clock.freeze(START - timedelta(hours=3))
    draft = await draft_campaign(committing_database, emails=3, balance=20)

    async def always_dies(database: Database, campaign_id: uuid.UUID) -> int:
        raise JobKilled

    # Every preparation job dies before doing anything (a poison campaign, a bad deploy).
    monkeypatch.setattr(sending, "prepare_campaign_emails", always_dies)
    await schedule(committing_database, draft.campaign_id, draft.user_id)
    for _ in range(10):  # a tick every 10 minutes for 100 minutes
        frozen_clock.advance(timedelta(minutes=10))
        await sending.send_due_emails(committing_database)
        await wait_for_jobs()
        async with committing_database.session() as session:
            await check_invariants(session, delivered=[])
    async with committing_database.session() as session:
        emails = await emails_of(session, draft.campaign_id)
        assert {e.status for e in emails.values()} == {EmailStatus.failed}
        assert all(e.refunded for e in emails.values())
        assert all("not prepared in time" in (e.last_error or "") for e in emails.values())
        assert await credit_service.get_balance(session, user_id=draft.user_id) == 20
        await check_invariants(session, delivered=[])


# -- metrics ----------------------------------------------------------------------------


def emails_sent_metric() -> float:
    return REGISTRY.get_sample_value("outreach_emails_sent_total", {"provider": "outbox"}) or 0.0


class HeldRecorder(sending.SentRecorder):
    """Keeps the outcomes instead of writing them: the writer is stuck (a slow commit)."""

    def __init__(self, database: Database) -> None:
        super().__init__(database)
        self.held: list[tuple[Any, ...]] = []

    def record(self, *outcome: Any) -> None:
        self.held.append(outcome)


async def test_a_send_recorded_after_its_lease_was_reconciled_is_counted_once(
    committing_database: Database,
    outbox_settings: Settings,
    jobs_on: None,
    frozen_clock: Clock,
) -> None:
    frozen_clock.freeze(START - timedelta(hours=2))
    draft = await draft_campaign(committing_database, emails=1)
    await schedule(committing_database, draft.campaign_id, draft.user_id)
    frozen_clock.freeze(START)
    before = emails_sent_metric()
    async with committing_database.session() as session:
        ids = await sending.claim_due_emails(session, mailbox_id=draft.mailbox_id, now=START)
    assert len(ids) == 1
    held = HeldRecorder(committing_database)
    for claimed in await sending._load_claimed(committing_database, ids):
        await sending._send_claimed(committing_database, claimed, held)
    assert len(held.held) == 1  # sent; its outcome not written yet

    # The lease runs out meanwhile: the next tick finds the message and records it.
    frozen_clock.advance(sending.LEASE + timedelta(minutes=1))
    assert await sending.recover_expired_leases(committing_database, utcnow()) == 1
    assert emails_sent_metric() == before + 1
    # Then the stuck writer gets through: nothing to write, nothing to count again.
    late = sending.SentRecorder(committing_database)
    late.record(*held.held[0])
    await late.drain()
    assert emails_sent_metric() == before + 1
    async with committing_database.session() as session:
        (email,) = (await emails_of(session, draft.campaign_id)).values()
        assert email.status == EmailStatus.sent
        summary = await check_invariants(
            session, delivered=outbox_deliveries(outbox_settings.outbox_path)
        )
        assert summary.delivered == 1


async def test_sent_outcomes_share_a_batch_and_drain_does_not_wait_for_it(
    committing_database: Database,
    outbox_settings: Settings,
    jobs_on: None,
    frozen_clock: Clock,
) -> None:
    """Outcomes wait (``linger``) for others to share their commit; draining the tick
    writes them at once, and a writer left alone writes them after the wait."""
    frozen_clock.freeze(START - timedelta(hours=2))
    draft = await draft_campaign(committing_database, emails=3)
    await schedule(committing_database, draft.campaign_id, draft.user_id)
    async with committing_database.session() as session:
        due = max(e.due_at for e in (await emails_of(session, draft.campaign_id)).values())
    frozen_clock.freeze(due)
    before = emails_sent_metric()
    async with committing_database.session() as session:
        ids = await sending.claim_due_emails(session, mailbox_id=draft.mailbox_id, now=due)
    assert len(ids) == 3
    held = HeldRecorder(committing_database)
    for claimed in await sending._load_claimed(committing_database, ids):
        await sending._send_claimed(committing_database, claimed, held)
    first, second, third = held.held

    # A linger far longer than any test: only draining can have written these.
    waiting = sending.SentRecorder(committing_database, linger=3600)
    waiting.record(*first)
    waiting.record(*second)
    await waiting.drain()
    # A short linger and no drain: the writer writes once the wait is over.
    alone = sending.SentRecorder(committing_database, linger=0.01)
    alone.record(*third)
    assert alone._writer is not None
    await alone._writer

    assert emails_sent_metric() == before + 3
    async with committing_database.session() as session:
        emails = await emails_of(session, draft.campaign_id)
        assert {e.status for e in emails.values()} == {EmailStatus.sent}
        summary = await check_invariants(
            session, delivered=outbox_deliveries(outbox_settings.outbox_path)
        )
        assert summary.delivered == 3
