"""A worker killed at random points never sends an email twice or loses one.

A crash is simulated by raising, at a chosen point, an exception that nothing
in the sender catches: the open transaction is rolled back exactly as if the
process had died, and the lease is left to expire. The next tick reconciles.
"""

from __future__ import annotations

import contextlib
import random
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.campaign import sending
from outreach.campaign.schemas import CampaignCreate
from outreach.campaign.service import campaign_service
from outreach.config import Settings
from outreach.credits.service import credit_service
from outreach.kit.clock import Clock
from outreach.kit.db import Database
from outreach.models import LedgerEntry
from outreach.models.campaign import FINAL_EMAIL_STATUSES, EmailStatus, ScheduledEmail
from tests.campaign.conftest import Crash, arm_crash, make_list, make_outbox_mailbox, make_template
from tests.conftest import create_user

START = datetime(2026, 11, 30, 3, 30, tzinfo=UTC)  # Monday 09:00 in Kolkata


async def _campaign(session: AsyncSession, index: int, emails: int) -> tuple[uuid.UUID, uuid.UUID]:
    user = await create_user(session, f"crash{index}@example.com", balance=50)
    mailbox = await make_outbox_mailbox(session, user, address=f"crash{index}@example.com")
    recipient_list = await make_list(
        session,
        user,
        [{"email": f"r{n}@company{n}.com", "company": f"Co {n}"} for n in range(emails)],
    )
    template_id = await make_template(session, user)
    campaign = await campaign_service.create(
        session,
        user=user,
        data=CampaignCreate(
            name="crash",
            mailbox_id=mailbox.id,
            template_id=template_id,
            list_id=recipient_list.id,
            start_at=START,
            min_gap_seconds=0,
            jitter_seconds=0,
            company_cap=None,
        ),
    )
    await campaign_service.schedule(session, user=user, campaign=campaign)
    return campaign.id, user.id


@pytest.mark.parametrize("run", range(50))
async def test_random_crashes_never_duplicate_or_lose(
    run: int,
    database: Database,
    session: AsyncSession,
    outbox_settings: Settings,
    frozen_clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = random.Random(run)
    frozen_clock.freeze(START - timedelta(hours=1))
    campaign_id, user_id = await _campaign(session, run, emails=rng.randint(2, 5))
    await session.commit()
    await sending.prepare_campaign_emails(database, campaign_id)
    emails = list(
        (
            await session.scalars(
                select(ScheduledEmail).where(ScheduledEmail.campaign_id == campaign_id)
            )
        ).all()
    )
    deleted_draft = None
    if rng.random() < 0.3:
        # The user deleted one draft in their mailbox before its time.
        deleted_draft = emails[0]
        draft = (
            outbox_settings.outbox_path
            / str(emails[0].mailbox_id)
            / "drafts"
            / f"{emails[0].draft_id}.eml"
        )
        draft.unlink()
    point = rng.choice(["after_claim", "after_provider_send", "before_claim_commit"])
    armed = arm_crash(
        monkeypatch, point, countdown=rng.randint(0, 1) if point == "after_claim" else 0
    )
    frozen_clock.freeze(START)
    for _ in range(12):
        # A Crash means the worker died; the next one starts fresh after the lease.
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
    outbox: Path = outbox_settings.outbox_path / str(rows[0].mailbox_id)
    sent_files = list(outbox.glob("*.eml"))
    sent = [r for r in rows if r.status == EmailStatus.sent]
    assert len(sent_files) == len(sent)  # one file per sent email: never twice
    assert {r.rfc822_message_id for r in sent} == {
        str(__import__("email").message_from_bytes(p.read_bytes())["Message-ID"])
        for p in sent_files
    }
    for row in rows:
        if row.status == EmailStatus.failed:
            assert row.refunded
    if deleted_draft is not None:
        gone = next(r for r in rows if r.id == deleted_draft.id)
        assert gone.status == EmailStatus.failed
        assert gone.refunded
    balance = await credit_service.get_balance(session, user_id=user_id)
    ledger = await session.scalar(
        select(func.coalesce(func.sum(LedgerEntry.delta), 0)).where(LedgerEntry.user_id == user_id)
    )
    assert balance == ledger == 50 - len(sent) - sum(r.status == EmailStatus.unknown for r in rows)
