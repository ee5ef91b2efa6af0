"""Campaigns through Gmail: drafts in the fake Gmail (checked against Google's discovery
document), sent at their time with the unsubscribe headers, exactly once, and the
send-only and deleted-draft cases."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.campaign import sending
from outreach.campaign.schemas import CampaignCreate
from outreach.campaign.service import campaign_service
from outreach.config import Settings, use_settings
from outreach.credits.service import credit_service
from outreach.kit.clock import Clock
from outreach.kit.db import Database
from outreach.models import MailboxMode, MailboxStatus
from outreach.models.campaign import Campaign, CampaignStatus, EmailStatus, ScheduledEmail
from outreach.referral.service import referral_service
from tests.campaign.conftest import make_list, make_template
from tests.conftest import create_user
from tests.fakes.gmail import FakeGmail
from tests.fakes.google import FakeGoogle
from tests.fakes.google_oauth import FAKE_CLIENT_SECRET
from tests.mailbox.conftest import gmail_mailbox

START = datetime(2026, 11, 30, 3, 30, tzinfo=UTC)
GMAIL = "asha.rao@gmail.com"


@pytest.fixture
def gmail_settings(
    settings: Settings,
    fake_google: FakeGoogle,
    fake_gmail: FakeGmail,
    tmp_path: Path,
) -> Iterator[Settings]:
    configured = settings.model_copy(
        update={
            "gmail_client_secret": SecretStr(FAKE_CLIENT_SECRET),
            "google_token_url": f"{fake_google.url}/token",
            "google_revoke_url": f"{fake_google.url}/revoke",
            "gmail_api_url": fake_gmail.url,
            "gmail_retry_base_seconds": 0.001,
            "outbox_path": tmp_path / "outbox",
        }
    )
    use_settings(configured)
    yield configured
    use_settings(settings)


async def scheduled_campaign(
    session: AsyncSession,
    fake_google: FakeGoogle,
    *,
    mode: MailboxMode = MailboxMode.full,
    emails: int = 3,
) -> tuple[Campaign, object]:
    user = await create_user(session, "asha@example.com", balance=30)
    mailbox, _ = await gmail_mailbox(session, fake_google, user, email=GMAIL, mode=mode)
    mailbox.timezone = "Asia/Kolkata"
    recipients = await make_list(
        session,
        user,
        [
            {"email": f"lead{n}@firm{n}.com", "first_name": f"Lead{n}", "company": f"Firm {n}"}
            for n in range(emails)
        ],
    )
    template_id = await make_template(session, user)
    campaign = await campaign_service.create(
        session,
        user=user,
        data=CampaignCreate(
            name="Gmail run",
            mailbox_id=mailbox.id,
            template_id=template_id,
            list_id=recipients.id,
            start_at=START,
            min_gap_seconds=60,
            jitter_seconds=0,
        ),
    )
    await campaign_service.schedule(session, user=user, campaign=campaign)
    await session.flush()
    return campaign, user


async def run_ticks(database: Database, clock: Clock, ticks: int = 8) -> None:
    clock.freeze(START)
    for _ in range(ticks):
        await sending.send_due_emails(database)
        clock.advance(timedelta(minutes=1))


async def test_drafts_then_sent_once_with_headers(
    session: AsyncSession,
    database: Database,
    gmail_settings: Settings,
    fake_google: FakeGoogle,
    fake_gmail: FakeGmail,
    frozen_clock: Clock,
) -> None:
    frozen_clock.freeze(START - timedelta(hours=1))
    referrer = await create_user(session, "friend@example.com")
    campaign, user = await scheduled_campaign(session, fake_google)
    await referral_service.apply_code(session, user=user, code=referrer.referral_code)  # type: ignore[arg-type]
    await sending.prepare_campaign_emails(database, campaign.id)
    box = fake_gmail.mailbox(GMAIL)
    assert len(box.drafts) == 3
    assert fake_gmail.sent(GMAIL) == []

    await run_ticks(database, frozen_clock)
    sent = fake_gmail.sent(GMAIL)
    assert len(sent) == 3
    assert box.drafts == {}
    for message in sent:
        parsed = message.parsed
        assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert str(parsed["List-Unsubscribe"]).startswith("<http://testserver/u/")
        assert "unsubscribe here" in parsed.get_body(("plain",)).get_content()
    rows = (
        await session.scalars(
            select(ScheduledEmail).where(ScheduledEmail.campaign_id == campaign.id)
        )
    ).all()
    assert {r.status for r in rows} == {EmailStatus.sent}
    assert {r.provider_message_id for r in rows} == {m.id for m in sent}
    # More ticks change nothing: never twice.
    await run_ticks(database, frozen_clock, ticks=3)
    assert len(fake_gmail.sent(GMAIL)) == 3
    # The first real Gmail send of a referred user rewards the referrer once.
    assert await credit_service.get_balance(session, user_id=referrer.id) == 25


async def test_draft_deleted_by_the_user_fails_and_refunds(
    session: AsyncSession,
    database: Database,
    gmail_settings: Settings,
    fake_google: FakeGoogle,
    fake_gmail: FakeGmail,
    frozen_clock: Clock,
) -> None:
    frozen_clock.freeze(START - timedelta(hours=1))
    campaign, user = await scheduled_campaign(session, fake_google, emails=2)
    await sending.prepare_campaign_emails(database, campaign.id)
    before = await credit_service.get_balance(session, user_id=user.id)  # type: ignore[attr-defined]
    box = fake_gmail.mailbox(GMAIL)
    box.drafts.pop(next(iter(box.drafts)))  # the user deleted it in Gmail
    await run_ticks(database, frozen_clock)
    rows = (
        await session.scalars(
            select(ScheduledEmail).where(ScheduledEmail.campaign_id == campaign.id)
        )
    ).all()
    assert sorted(r.status for r in rows) == [EmailStatus.failed, EmailStatus.sent]
    assert len(fake_gmail.sent(GMAIL)) == 1
    failed = next(r for r in rows if r.status == EmailStatus.failed)
    assert failed.refunded
    assert await credit_service.get_balance(session, user_id=user.id) == before + 1  # type: ignore[attr-defined]


async def test_5xx_on_send_is_reconciled_not_resent(
    session: AsyncSession,
    database: Database,
    gmail_settings: Settings,
    fake_google: FakeGoogle,
    fake_gmail: FakeGmail,
    frozen_clock: Clock,
) -> None:
    frozen_clock.freeze(START - timedelta(hours=1))
    campaign, _ = await scheduled_campaign(session, fake_google, emails=1)
    await sending.prepare_campaign_emails(database, campaign.id)
    # Gmail sends the draft, then answers 500: the outcome is unknown to us.
    fake_gmail.fail("gmail.users.drafts.send", status=500, apply=True)
    await run_ticks(database, frozen_clock)
    assert len(fake_gmail.sent(GMAIL)) == 1
    row = await session.scalar(
        select(ScheduledEmail).where(ScheduledEmail.campaign_id == campaign.id)
    )
    assert row is not None
    assert row.status == EmailStatus.sent


async def test_send_only_unknown_outcome_is_never_resent(
    session: AsyncSession,
    database: Database,
    gmail_settings: Settings,
    fake_google: FakeGoogle,
    fake_gmail: FakeGmail,
    frozen_clock: Clock,
) -> None:
    frozen_clock.freeze(START - timedelta(hours=1))
    campaign, _ = await scheduled_campaign(
        session, fake_google, mode=MailboxMode.send_only, emails=1
    )
    await sending.prepare_campaign_emails(database, campaign.id)
    assert fake_gmail.mailbox(GMAIL).drafts == {}
    fake_gmail.fail("gmail.users.messages.send", status=500, apply=True)
    await run_ticks(database, frozen_clock)
    assert len(fake_gmail.sent(GMAIL)) == 1
    row = await session.scalar(
        select(ScheduledEmail).where(ScheduledEmail.campaign_id == campaign.id)
    )
    assert row is not None
    assert row.status == EmailStatus.unknown
    assert not row.refunded


async def test_send_only_sends_the_message_stored_when_prepared(
    session: AsyncSession,
    database: Database,
    gmail_settings: Settings,
    fake_google: FakeGoogle,
    fake_gmail: FakeGmail,
    frozen_clock: Clock,
) -> None:
    """Send-only mailboxes keep the encoded message from preparation; the send is that
    message byte for byte, and the stored copy is dropped once Gmail has it."""
    from sqlalchemy.orm import undefer

    frozen_clock.freeze(START - timedelta(hours=1))
    campaign, _ = await scheduled_campaign(
        session, fake_google, mode=MailboxMode.send_only, emails=2
    )
    campaign_id = campaign.id
    await sending.prepare_campaign_emails(database, campaign_id)
    session.expire_all()
    stored = {
        row.rfc822_message_id: row.mime
        for row in await session.scalars(
            select(ScheduledEmail)
            .where(ScheduledEmail.campaign_id == campaign_id)
            .options(undefer(ScheduledEmail.mime))
        )
    }
    assert len(stored) == 2
    assert all(
        mime and b"List-Unsubscribe-Post: List-Unsubscribe=One-Click" in mime
        for mime in stored.values()
    )
    await run_ticks(database, frozen_clock)
    sent = fake_gmail.sent(GMAIL)

    def undated(raw: bytes) -> bytes:
        return re.sub(rb"(?m)^Date: [^\r\n]*\r\n", b"", raw)

    assert sorted(undated(m.raw) for m in sent) == sorted(undated(m) for m in stored.values())
    for message in sent:  # dated when sent (the ticks start at START), not when prepared
        assert parsedate_to_datetime(str(message.parsed["Date"])) >= START
    session.expire_all()
    rows = (
        await session.scalars(
            select(ScheduledEmail)
            .where(ScheduledEmail.campaign_id == campaign_id)
            .options(undefer(ScheduledEmail.mime))
        )
    ).all()
    assert [(r.status, r.mime) for r in rows] == [(EmailStatus.sent, None)] * 2
    assert {r.provider_message_id for r in rows} == {m.id for m in sent}


async def test_revoked_mailbox_pauses_the_campaign(
    session: AsyncSession,
    database: Database,
    gmail_settings: Settings,
    fake_google: FakeGoogle,
    fake_gmail: FakeGmail,
    frozen_clock: Clock,
) -> None:
    frozen_clock.freeze(START - timedelta(hours=1))
    campaign, _ = await scheduled_campaign(session, fake_google, emails=2)
    await sending.prepare_campaign_emails(database, campaign.id)
    fake_gmail.fail("gmail.users.drafts.send", status=401, reason="authError", times=10)
    fake_google.oauth.revoke_all() if hasattr(fake_google.oauth, "revoke_all") else None
    await run_ticks(database, frozen_clock, ticks=3)
    await session.refresh(campaign)
    assert campaign.status == CampaignStatus.paused
    assert fake_gmail.sent(GMAIL) == []
    rows = (
        await session.scalars(
            select(ScheduledEmail).where(ScheduledEmail.campaign_id == campaign.id)
        )
    ).all()
    assert all(r.status == EmailStatus.ready for r in rows)
    from outreach.models import Mailbox

    mailbox = await session.get(Mailbox, campaign.mailbox_id)
    assert mailbox is not None
    assert mailbox.status == MailboxStatus.revoked


async def test_a_message_that_cannot_be_built_fails_alone_and_leaves_no_orphan_drafts(
    session: AsyncSession,
    database: Database,
    gmail_settings: Settings,
    fake_google: FakeGoogle,
    fake_gmail: FakeGmail,
    frozen_clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    frozen_clock.freeze(START - timedelta(hours=1))
    campaign, _ = await scheduled_campaign(session, fake_google, emails=3)
    campaign_id = campaign.id
    real_build = sending.preparing.build_mime
    calls = {"n": 0}

    def failing_second(*args: object) -> object:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("a header the email library cannot write")
        return real_build(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(sending.preparing, "build_mime", failing_second)
    # The job does not give up: that email fails with the reason, the others go on.
    assert await sending.prepare_campaign_emails(database, campaign_id) == 2
    monkeypatch.undo()
    box = fake_gmail.mailbox(GMAIL)
    rows = (
        await session.execute(
            select(ScheduledEmail.status, ScheduledEmail.draft_id, ScheduledEmail.last_error).where(
                ScheduledEmail.campaign_id == campaign_id
            )
        )
    ).all()
    assert sorted(status for status, _, _ in rows) == sorted(
        [EmailStatus.ready, EmailStatus.ready, EmailStatus.failed]
    )
    (failed,) = [error for status, _, error in rows if status == EmailStatus.failed]
    assert "a header the email library cannot write" in failed
    drafts = [draft for status, draft, _ in rows if status == EmailStatus.ready]
    assert sorted(drafts) == sorted(box.drafts)  # no orphaned draft
