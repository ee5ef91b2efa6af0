"""Two schedules of one campaign racing (two requests with different keys, the API and
a page): one plans and charges, the other is refused; never a second set of emails
whose refunds would hand back credits nobody paid."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from outreach.campaign import service as campaign_module
from outreach.campaign.schemas import CampaignCreate
from outreach.campaign.service import CampaignStateConflict, campaign_service
from outreach.config import Settings
from outreach.credits.service import credit_service
from outreach.kit.clock import Clock
from outreach.kit.db import Database
from outreach.models import LedgerEntry
from outreach.models.campaign import ScheduledEmail
from tests.campaign.conftest import make_list, make_outbox_mailbox, make_template
from tests.campaign.test_crashes import START
from tests.conftest import create_user


async def test_two_concurrent_schedules_plan_and_charge_once(
    committing_database: Database,
    outbox_settings: Settings,
    frozen_clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(campaign_module, "enqueue_after_commit", lambda *a, **k: None)
    frozen_clock.freeze(START - timedelta(hours=1))
    async with committing_database.session() as session:
        user = await create_user(session, "twice@example.com", balance=100)
        mailbox = await make_outbox_mailbox(session, user)
        recipients = await make_list(
            session, user, [{"email": f"p{n}@org{n}.com", "company": f"Org {n}"} for n in range(4)]
        )
        campaign = await campaign_service.create(
            session,
            user=user,
            data=CampaignCreate(
                name="twice",
                mailbox_id=mailbox.id,
                template_id=await make_template(session, user),
                list_id=recipients.id,
                start_at=START,
                min_gap_seconds=0,
                jitter_seconds=0,
                company_cap=None,
            ),
        )

    async def schedule() -> Any:
        try:
            async with committing_database.session() as session:
                mine = await campaign_service.get(session, user=user, campaign_id=campaign.id)
                return await campaign_service.schedule(session, user=user, campaign=mine)
        except CampaignStateConflict:
            return "409"

    answers = await asyncio.gather(schedule(), schedule())
    assert sorted(answers, key=str) == [(4, 4, {}), "409"]
    async with committing_database.session() as session:
        emails = await session.scalar(
            select(func.count())
            .select_from(ScheduledEmail)
            .where(ScheduledEmail.campaign_id == campaign.id)
        )
        assert emails == 4
        balance = await credit_service.get_balance(session, user_id=user.id)
        assert balance == 100 - 4
        total = await session.scalar(
            select(func.sum(LedgerEntry.delta)).where(LedgerEntry.user_id == user.id)
        )
        assert total == balance
