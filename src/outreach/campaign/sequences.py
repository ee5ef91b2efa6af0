"""The sequence job: a waiting follow-up gets its time and thread once the step before
it is sent, or is cancelled and refunded when that step ended unsent."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.campaign import followups
from outreach.campaign.service import campaign_service, campaign_timezone
from outreach.kit.db import Database
from outreach.kit.jobs import enqueue_after_commit
from outreach.kit.logging import get_logger
from outreach.models import Mailbox, Recipient
from outreach.models.campaign import Campaign, CampaignStep, EmailStatus, ScheduledEmail

log = get_logger("outreach.campaign.sequences")


async def advance_sequences(database: Database) -> int:
    """Schedule every follow-up whose previous step reached its end; returns how many
    were scheduled (their drafts are then prepared like any email)."""
    async with database.session() as session:
        scheduled = 0
        campaigns: set[str] = set()
        for followup, previous in await followups.due_followups(session):
            if previous.status != EmailStatus.sent:
                await campaign_service.refund_email(
                    session, email=followup, status=EmailStatus.cancelled
                )
                followup.last_error = f"the previous step ended {previous.status.value}"
                continue
            await _schedule_followup(session, followup, previous)
            campaigns.add(str(followup.campaign_id))
            scheduled += 1
        for campaign_id in sorted(campaigns):
            enqueue_after_commit(session, "campaign.prepare_emails", campaign_id=campaign_id)
    return scheduled


async def _schedule_followup(
    session: AsyncSession, followup: ScheduledEmail, previous: ScheduledEmail
) -> None:
    """In the thread of ``previous``, N business days after it was sent, placed by the
    planner under the campaign's window, time zone and caps."""
    campaign = await session.get(Campaign, followup.campaign_id)
    mailbox = await session.get(Mailbox, followup.mailbox_id)
    delay = await session.scalar(
        select(CampaignStep.delay_business_days).where(
            CampaignStep.campaign_id == followup.campaign_id,
            CampaignStep.position == followup.step,
        )
    )
    assert campaign is not None
    assert mailbox is not None
    assert previous.sent_at is not None
    followups.thread_followup(followup, previous)
    target = followups.add_business_days(
        previous.sent_at,
        int(delay or 4),
        weekdays=frozenset(campaign.window_days),
        zone=campaign_timezone(campaign, mailbox),
    )
    recipient = (
        await session.get(Recipient, followup.recipient_id) if followup.recipient_id else None
    )
    followup.status = EmailStatus.pending
    await campaign_service.spread(
        session,
        campaign=campaign,
        mailbox=mailbox,
        emails=[(followup, recipient.timezone if recipient else None)],
        moment=target,
    )
