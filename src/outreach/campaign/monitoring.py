"""The sending lag: how late the oldest due email is, for ``/metrics``.

Refreshed before every API scrape (registered as a scrape hook in ``tasks.py``)
and after every send tick in the worker that ran it, so a stuck sender shows
as a growing lag on the API even when no worker is left to report it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.kit import metrics
from outreach.kit.clock import utcnow
from outreach.kit.db import Database
from outreach.models.campaign import Campaign, CampaignStatus, EmailStatus, ScheduledEmail

# Waiting on us, not on the user: emails awaiting approval or in paused campaigns
# are not late.
_UNSENT = (EmailStatus.pending, EmailStatus.ready)
_ACTIVE = (CampaignStatus.scheduled, CampaignStatus.sending)


async def oldest_due_unsent(session: AsyncSession, *, now: datetime) -> datetime | None:
    """The due time of the oldest due, unsent email of an active campaign."""
    oldest: datetime | None = await session.scalar(
        select(func.min(ScheduledEmail.due_at))
        .join(Campaign, Campaign.id == ScheduledEmail.campaign_id)
        .where(
            ScheduledEmail.status.in_(_UNSENT),
            ScheduledEmail.due_at <= now,
            Campaign.status.in_(_ACTIVE),
        )
    )
    return oldest


def sending_lag_seconds(oldest: datetime | None, *, now: datetime) -> float:
    return max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0


async def refresh_sending_lag(database: Database) -> None:
    """Set the sending lag gauge from the database."""
    now = utcnow()
    async with database.session() as session:
        oldest = await oldest_due_unsent(session, now=now)
    metrics.SENDING_LAG.set(sending_lag_seconds(oldest, now=now))
