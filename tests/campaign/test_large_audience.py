"""A campaign over more recipients than one SQL statement may carry parameters.

A list holds up to 100,000 rows. PostgreSQL (asyncpg) takes at most 32,767
parameters in a statement and SQLite 32,766, so the checks that look up a whole
audience at once (suppressions, recent sends, the company cap's bookings) must
split their ``IN (…)`` lists; before they did, preview and schedule of such a
campaign failed with a 500 on PostgreSQL.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.campaign import service as campaign_module
from outreach.campaign import views
from outreach.campaign.schemas import CampaignCreate
from outreach.campaign.service import campaign_service
from outreach.config import Settings
from outreach.credits.service import credit_service
from outreach.kit.clock import Clock
from outreach.kit.db import IN_LIST_MAX, in_batches
from outreach.models import Recipient
from outreach.models.campaign import EmailStatus, ScheduledEmail
from outreach.models.recipient_list import ListStatus, RecipientList
from outreach.models.suppression import SuppressionReason
from outreach.recipient.suppression import suppression_service
from tests.campaign.conftest import make_outbox_mailbox, make_template
from tests.campaign.test_crashes import START
from tests.conftest import create_user

RECIPIENTS = 33_000  # past both databases' parameter limit


def test_in_batches_splits_at_the_limit_and_keeps_every_value() -> None:
    values = list(range(2 * IN_LIST_MAX + 1))
    batches = list(in_batches(values))
    assert [len(batch) for batch in batches] == [IN_LIST_MAX, IN_LIST_MAX, 1]
    assert [value for batch in batches for value in batch] == values
    assert list(in_batches([])) == []


async def test_a_campaign_past_the_parameter_limit_previews_and_schedules(
    session: AsyncSession,
    outbox_settings: Settings,
    frozen_clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(campaign_module, "enqueue_after_commit", lambda *a, **k: None)
    frozen_clock.freeze(START - timedelta(hours=1))
    user = await create_user(session, "many@example.com", balance=RECIPIENTS)
    mailbox = await make_outbox_mailbox(session, user, cap=2000)
    recipient_list = RecipientList(user_id=user.id, name="Everyone", status=ListStatus.ready)
    session.add(recipient_list)
    await session.flush()
    # Every recipient at a company of their own: the company cap looks up 33,000 domains.
    emails = [f"person{n}@company{n}.example" for n in range(RECIPIENTS)]
    await session.execute(
        insert(Recipient),
        [
            {
                "id": uuid.uuid4(),
                "list_id": recipient_list.id,
                "user_id": user.id,
                "position": n + 2,
                "email": email,
                "first_name": f"Person{n}",
                "company": f"Company {n}",
                "custom_fields": {},
                "source": "upload",
                "verification_status": "deliverable",
                "verification_reasons": [],
            }
            for n, email in enumerate(emails)
        ],
    )
    # Suppressed: one address, and one whole company domain, far into the list.
    await suppression_service.add(
        session,
        user_id=user.id,
        value=emails[31_000],
        reason=SuppressionReason.unsubscribed,
        source=None,
    )
    await suppression_service.add(
        session,
        user_id=user.id,
        value="@company32999.example",
        reason=SuppressionReason.manual,
        source=None,
    )
    # Emailed by another campaign that is still sending: left out as recently emailed.
    earlier = await campaign_service.create(
        session,
        user=user,
        data=CampaignCreate(
            name="earlier",
            mailbox_id=mailbox.id,
            template_id=await make_template(session, user),
            list_id=recipient_list.id,
            start_at=START,
        ),
    )
    await session.execute(
        insert(ScheduledEmail),
        [
            {
                "campaign_id": earlier.id,
                "user_id": user.id,
                "mailbox_id": mailbox.id,
                "to_address": emails[n],
                "status": EmailStatus.pending,
                "due_at": START,
                "subject": "Earlier",
                "body_text": "Earlier",
                "rfc822_message_id": f"<earlier{n}@example.com>",
            }
            for n in (5, 32_000)
        ],
    )
    campaign = await campaign_service.create(
        session,
        user=user,
        data=CampaignCreate(
            name="everyone",
            mailbox_id=mailbox.id,
            template_id=await make_template(session, user),
            list_id=recipient_list.id,
            start_at=START,
            min_gap_seconds=0,
            jitter_seconds=0,
            company_cap=1,
        ),
    )

    preview = await views.preview(session, user=user, campaign=campaign, limit=3)
    assert preview.skipped == {"suppressed": 2, "recently_emailed": 2}
    assert preview.to_send == RECIPIENTS - 4

    scheduled, charged, skipped = await campaign_service.schedule(
        session, user=user, campaign=campaign
    )
    assert (scheduled, charged) == (RECIPIENTS - 4, RECIPIENTS - 4)
    assert skipped == {"suppressed": 2, "recently_emailed": 2}
    stored = set(
        await session.scalars(
            select(ScheduledEmail.to_address).where(ScheduledEmail.campaign_id == campaign.id)
        )
    )
    assert len(stored) == RECIPIENTS - 4
    assert not stored & {emails[31_000], emails[32_999], emails[5], emails[32_000]}
    assert await credit_service.get_balance(session, user_id=user.id) == 4
    count = await session.scalar(
        select(func.count())
        .select_from(ScheduledEmail)
        .where(ScheduledEmail.campaign_id == campaign.id, ScheduledEmail.due_at.is_(None))
    )
    assert count == 0
