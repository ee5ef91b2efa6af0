"""The crash test again, through the fake Gmail (drafts, full mode): a worker killed
after the claim, after Gmail accepted the send, or before the claim committed, and
sometimes a draft deleted by the user first. Gmail never holds a duplicate."""

from __future__ import annotations

import contextlib
import random
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.campaign import sending
from outreach.config import Settings
from outreach.credits.service import credit_service
from outreach.kit.clock import Clock
from outreach.kit.db import Database
from outreach.models import LedgerEntry
from outreach.models.campaign import FINAL_EMAIL_STATUSES, EmailStatus, ScheduledEmail
from tests.campaign.conftest import Crash, arm_crash
from tests.campaign.test_crashes import START
from tests.campaign.test_gmail import GMAIL, gmail_settings, scheduled_campaign  # noqa: F401
from tests.fakes.gmail import FakeGmail
from tests.fakes.google import FakeGoogle


@pytest.mark.parametrize("run", range(30))
async def test_random_crashes_through_gmail(
    run: int,
    database: Database,
    session: AsyncSession,
    gmail_settings: Settings,  # noqa: F811
    fake_google: FakeGoogle,
    fake_gmail: FakeGmail,
    frozen_clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = random.Random(1000 + run)
    frozen_clock.freeze(START - timedelta(hours=1))
    campaign, user = await scheduled_campaign(session, fake_google, emails=rng.randint(2, 4))
    campaign_id, user_id = campaign.id, user.id  # type: ignore[attr-defined]
    await sending.prepare_campaign_emails(database, campaign_id)
    box = fake_gmail.mailbox(GMAIL)
    deleted = None
    if rng.random() < 0.3:
        deleted = next(iter(box.drafts))
        box.drafts.pop(deleted)  # the user deleted this draft in Gmail
    point = rng.choice(["after_claim", "after_provider_send", "before_claim_commit"])
    armed = arm_crash(
        monkeypatch, point, countdown=rng.randint(0, 1) if point == "after_claim" else 0
    )
    frozen_clock.freeze(START)
    for _ in range(12):
        with contextlib.suppress(Crash):
            await sending.send_due_emails(database)
        frozen_clock.advance(sending.LEASE + timedelta(seconds=1))
    monkeypatch.undo()
    assert armed == [-1], f"the crash at {point} never fired"

    session.expire_all()
    rows = list(
        (
            await session.scalars(
                select(ScheduledEmail).where(ScheduledEmail.campaign_id == campaign_id)
            )
        ).all()
    )
    assert all(r.status in FINAL_EMAIL_STATUSES for r in rows), [
        (r.status, r.last_error) for r in rows
    ]
    sent_ids = [str(m.parsed["Message-ID"]) for m in fake_gmail.sent(GMAIL)]
    assert max(Counter(sent_ids).values(), default=0) <= 1  # never a duplicate
    sent = [r for r in rows if r.status == EmailStatus.sent]
    assert sorted(r.rfc822_message_id for r in sent) == sorted(sent_ids)
    if deleted is not None:
        gone = next(r for r in rows if r.draft_id == deleted)
        assert gone.status == EmailStatus.failed
    for row in rows:
        assert row.refunded == (
            row.status in (EmailStatus.failed, EmailStatus.cancelled, EmailStatus.skipped)
        )
    balance = await credit_service.get_balance(session, user_id=user_id)
    ledger = await session.scalar(
        select(func.coalesce(func.sum(LedgerEntry.delta), 0)).where(LedgerEntry.user_id == user_id)
    )
    assert balance == ledger == 30 - len(sent)
