"""Campaign jobs: prepare drafts after scheduling, the send tick, draft clean-up."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from outreach.campaign import replies, sending, sequences
from outreach.campaign.monitoring import refresh_sending_lag
from outreach.campaign.service import campaign_service
from outreach.kit.db import get_database
from outreach.kit.jobs import job
from outreach.kit.metrics import before_scrape, run_scrape_hooks
from outreach.mailbox.events import MailboxUnavailableEvent, on_mailbox_unavailable

# Reply-check reactions register on import (mailbox.events hooks).
assert replies.record_inbox_message is not None

# /metrics reads the sending lag from the database before each scrape.
before_scrape(refresh_sending_lag)


@job("campaign.prepare_emails")
async def prepare_emails(campaign_id: str) -> int:
    """Create the campaign's drafts in batches (progress shows as ready / total)."""
    return await sending.prepare_campaign_emails(get_database(), uuid.UUID(campaign_id))


@job("campaign.send_due_emails", every_seconds=30, max_attempts=1)
async def send_due_emails() -> int:
    """The send tick: every 30 s, send what is due under the caps."""
    database = get_database()
    sent = await sending.send_due_emails(database)
    # This worker's own figures; a failed refresh is logged, never fails the tick.
    await run_scrape_hooks(database)
    return sent


@job("campaign.advance_sequences", every_seconds=60, max_attempts=1)
async def advance_sequences() -> int:
    """Follow-ups whose previous step was sent get their time and thread."""
    return await sequences.advance_sequences(get_database())


@job("campaign.delete_drafts")
async def delete_drafts(mailbox_id: str, draft_ids: list[str]) -> int:
    return await sending.delete_drafts(get_database(), uuid.UUID(mailbox_id), draft_ids)


@on_mailbox_unavailable
async def pause_campaigns(session: AsyncSession, event: MailboxUnavailableEvent) -> None:
    """A revoked or disconnected mailbox pauses its campaigns at once."""
    await campaign_service.pause_for_mailbox(
        session, mailbox_id=event.mailbox_id, reason=f"mailbox {event.status.value}: {event.reason}"
    )
