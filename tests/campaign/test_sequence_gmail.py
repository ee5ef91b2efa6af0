"""Issue 18's "must show", end to end through the fake Gmail (full mode): ten recipients
and one follow-up; between the steps three reply, one auto-replies, one bounces and one
unsubscribes. Exactly five follow-ups go out, each in its first email's Gmail thread with
In-Reply-To and References read from the raw bytes Gmail received; the five stopped ones
are refunded once each; the stats say the same; the fault suite's invariants hold.
And the race: a follow-up is never sent once a reply the reply check recorded before the
claim is in the database."""

from __future__ import annotations

import uuid
from datetime import timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.campaign import sending, tracking
from outreach.campaign.schemas import CampaignCreate, StepIn
from outreach.campaign.sending import delivery
from outreach.campaign.sequences import advance_sequences
from outreach.campaign.service import campaign_service
from outreach.config import Settings, use_settings
from outreach.credits.service import credit_service
from outreach.kit.clock import Clock
from outreach.kit.db import Database
from outreach.mailbox.tasks import check_inboxes
from outreach.models import LedgerEntry, LedgerReason, Mailbox
from outreach.models.campaign import Campaign, EmailStatus, ScheduledEmail
from tests.campaign.conftest import make_list, make_template
from tests.conftest import create_user
from tests.fakes.gmail import FakeGmail, StoredMessage
from tests.fakes.google import FakeGoogle
from tests.faults.invariants import check_invariants, gmail_deliveries
from tests.mailbox.conftest import gmail_mailbox
from tests.mailbox.test_inbox import GMAIL, START, gmail_settings

__all__ = ["gmail_settings"]  # the fixture, used by name

BALANCE = 100


def lead(n: int) -> str:
    return f"lead{n}@firm{n}.com"


def strict(raw: bytes) -> EmailMessage:
    message = BytesParser(policy=policy.strict).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    return message


async def first_emails_sent(
    session: AsyncSession, database: Database, fake_google: FakeGoogle, clock: Clock, n: int
) -> tuple[Campaign, Mailbox]:
    """A campaign of ``n`` with one follow-up (2 business days), its first emails sent."""
    clock.freeze(START - timedelta(hours=1))
    user = await create_user(session, "asha@example.com", balance=BALANCE)
    mailbox, _ = await gmail_mailbox(session, fake_google, user, email=GMAIL)
    mailbox.timezone = "Asia/Kolkata"
    people = await make_list(
        session,
        user,
        [{"email": lead(i), "first_name": f"Lead{i}", "company": f"Firm {i}"} for i in range(n)],
    )
    nudge = await make_template(
        session, user, name="Nudge", body_text="Hi {{ first_name }}, any thoughts?"
    )
    campaign = await campaign_service.create(
        session,
        user=user,
        data=CampaignCreate(
            name="Ten with a follow-up",
            mailbox_id=mailbox.id,
            template_id=await make_template(session, user),
            list_id=people.id,
            start_at=START,
            min_gap_seconds=60,
            jitter_seconds=0,
            steps=[StepIn(template_id=nudge, delay_business_days=2)],
        ),
    )
    await campaign_service.schedule(session, user=user, campaign=campaign)
    await sending.prepare_campaign_emails(database, campaign.id)
    clock.freeze(START)
    for _ in range(n + 2):
        await sending.send_due_emails(database)
        clock.advance(timedelta(minutes=1))
    return campaign, mailbox


async def send_followups(session: AsyncSession, database: Database, clock: Clock) -> int:
    """Three business days on: the sequence job, preparation, and the send ticks."""
    clock.advance(timedelta(days=3))
    scheduled = await advance_sequences(database)
    campaign_ids = await session.scalars(select(Campaign.id))
    for campaign_id in list(campaign_ids):
        await sending.prepare_campaign_emails(database, campaign_id)
    for _ in range(60):
        await sending.send_due_emails(database)
        clock.advance(timedelta(minutes=5))
    return scheduled


def sent_to(fake_gmail: FakeGmail, address: str) -> list[StoredMessage]:
    return [m for m in fake_gmail.sent(GMAIL) if address in str(m.parsed["To"])]


async def test_ten_recipients_one_follow_up_five_go_out_in_their_threads(
    session: AsyncSession,
    database: Database,
    client: httpx.AsyncClient,
    gmail_settings: Settings,
    fake_google: FakeGoogle,
    fake_gmail: FakeGmail,
    frozen_clock: Clock,
) -> None:
    campaign, _ = await first_emails_sent(session, database, fake_google, frozen_clock, 10)
    campaign_id, user_id = campaign.id, campaign.user_id
    firsts = {lead(i): sent_to(fake_gmail, lead(i)) for i in range(10)}
    assert all(len(messages) == 1 for messages in firsts.values())
    stored = {
        e.to_address: e
        for e in await session.scalars(select(ScheduledEmail).where(ScheduledEmail.step == 0))
    }
    # The sender kept each message's Gmail thread.
    assert {a: e.thread_id for a, e in stored.items()} == {
        a: m[0].thread_id for a, m in firsts.items()
    }
    await check_inboxes(database)  # the first check: our threads, and a history id

    for n in (0, 1, 2):
        fake_gmail.deliver_reply(GMAIL, firsts[lead(n)][0])
    fake_gmail.deliver_auto_reply(GMAIL, firsts[lead(3)][0])
    fake_gmail.deliver_bounce(GMAIL, firsts[lead(4)][0])
    # lead5 uses the one-click link of the message as Gmail received it.
    link = str(strict(firsts[lead(5)][0].raw)["List-Unsubscribe"]).split(">")[0].strip("<")
    assert (await client.post(link)).status_code == 200
    assert await check_inboxes(database) == 5

    fake_gmail.bodies.clear()
    assert await send_followups(session, database, frozen_clock) == 5

    answered = {lead(n) for n in range(6)} - {lead(3)}
    for address, (first,) in firsts.items():
        later = [m for m in sent_to(fake_gmail, address) if m.id != first.id]
        if address in answered:
            assert later == [], address
            continue
        (followup,) = later
        assert followup.thread_id == first.thread_id
        raw, original = strict(followup.raw), strict(first.raw)
        assert raw["In-Reply-To"] == original["Message-ID"]
        assert raw["References"] == original["Message-ID"]
        assert raw["Subject"] == "Re: " + original["Subject"]
        assert raw.get_body(("plain",)).get_content().startswith("Hi Lead")
    # Each draft was created in the first email's thread (threadId in the request).
    drafts = [body for method, body in fake_gmail.bodies if method == "gmail.users.drafts.create"]
    assert sorted(d["message"]["threadId"] for d in drafts) == sorted(
        firsts[a][0].thread_id for a in firsts if a not in answered
    )
    assert len(fake_gmail.sent(GMAIL)) == 15

    # 20 charged; the five stopped follow-ups refunded, once each.
    session.expire_all()
    followups = {
        e.to_address: e
        for e in await session.scalars(select(ScheduledEmail).where(ScheduledEmail.step == 1))
    }
    refunds = (
        await session.scalars(
            select(LedgerEntry.ref).where(LedgerEntry.reason == LedgerReason.campaign_refund)
        )
    ).all()
    assert sorted(refunds) == sorted(str(followups[a].id) for a in answered)
    assert await credit_service.get_balance(session, user_id=user_id) == BALANCE - 15
    assert {a: e.status for a, e in followups.items()} == {
        a: (
            EmailStatus.skipped
            if a == lead(5)
            else EmailStatus.cancelled
            if a in answered
            else EmailStatus.sent
        )
        for a in followups
    }

    shown = await session.get(Campaign, campaign_id)
    assert shown is not None
    stats = {s.step: s for s in await tracking.step_stats(session, shown)}
    first, second = stats[0], stats[1]
    assert (first.sent, first.replied, first.auto_replied, first.bounced) == (10, 3, 1, 1)
    assert (first.unsubscribed, first.reply_rate) == (1, 0.3)
    assert (second.scheduled, second.sent, second.cancelled) == (10, 5, 5)
    await check_invariants(session, delivered=gmail_deliveries(fake_gmail))


async def test_a_reply_recorded_before_a_claim_never_lets_that_claim_send_the_follow_up(
    session: AsyncSession,
    database: Database,
    gmail_settings: Settings,
    fake_google: FakeGoogle,
    fake_gmail: FakeGmail,
    frozen_clock: Clock,
    client: httpx.AsyncClient,  # the app: its in-process job broker
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Three follow-ups drafted and due. lead0 replies and the reply check records it
    before the tick: its follow-up is cancelled, never claimed. The tick claims lead1's
    and lead2's; lead1's reply arrives and is recorded between that claim and the send
    (the follow-up is ``sending``: nothing can stop a send already claimed), and Gmail
    rate-limits that send, so nothing goes and it is put back to wait. The next claim
    comes after the reply was recorded: it cancels and refunds the follow-up instead
    of sending it. Only lead2's follow-up goes out."""
    use_settings(gmail_settings.model_copy(update={"send_concurrency": 1}))
    campaign, _ = await first_emails_sent(session, database, fake_google, frozen_clock, 3)
    campaign_id, user_id = campaign.id, campaign.user_id
    await check_inboxes(database)
    frozen_clock.advance(timedelta(days=3))
    assert await advance_sequences(database) == 3
    await sending.prepare_campaign_emails(database, campaign_id)
    followups = await followups_by_address(session)
    assert {e.status for e in followups.values()} == {EmailStatus.ready}
    frozen_clock.freeze(max(e.due_at for e in followups.values()) + timedelta(minutes=1))
    balance = await credit_service.get_balance(session, user_id=user_id)

    fake_gmail.deliver_reply(GMAIL, sent_to(fake_gmail, lead(0))[0])
    assert await check_inboxes(database) == 1  # recorded before the claim

    load_claimed = delivery._load_claimed
    claimed: list[str] = []

    async def reply_between_claim_and_send(db: Database, ids: list[uuid.UUID]) -> Any:
        loaded = await load_claimed(db, ids)
        claimed.extend(c.email.to_address for c in loaded)
        if lead(1) in claimed:
            fake_gmail.deliver_reply(GMAIL, sent_to(fake_gmail, lead(1))[0])
            assert await check_inboxes(db) == 1
            fake_gmail.fail("gmail.users.drafts.send", status=429, retry_after=0, times=5)
        return loaded

    monkeypatch.setattr(delivery, "_load_claimed", reply_between_claim_and_send)
    await sending.send_due_emails(database)
    assert sorted(claimed) == [lead(1), lead(2)]  # lead0's was cancelled before the claim
    assert (await followups_by_address(session))[lead(1)].status == EmailStatus.ready

    frozen_clock.advance(timedelta(hours=1))
    claimed.clear()
    await sending.send_due_emails(database)
    assert claimed == []  # the reply was recorded before this claim

    followups = await followups_by_address(session)
    assert {a: e.status for a, e in followups.items()} == {
        lead(0): EmailStatus.cancelled,
        lead(1): EmailStatus.cancelled,
        lead(2): EmailStatus.sent,
    }
    assert [len(sent_to(fake_gmail, lead(n))) for n in range(3)] == [1, 1, 2]
    after = await credit_service.get_balance(session, user_id=user_id)
    assert after == balance + 2  # lead0's and lead1's follow-ups, refunded once each
    await check_invariants(session, delivered=gmail_deliveries(fake_gmail))


async def followups_by_address(session: AsyncSession) -> dict[str, ScheduledEmail]:
    session.expire_all()
    rows = await session.scalars(select(ScheduledEmail).where(ScheduledEmail.step == 1))
    return {e.to_address: e for e in rows}
