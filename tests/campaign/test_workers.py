"""Two workers sending at once: never past the daily cap, never the same email twice."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from outreach.campaign import sending
from outreach.campaign.schemas import CampaignCreate
from outreach.campaign.service import campaign_service
from outreach.config import Settings
from outreach.kit.clock import Clock
from outreach.kit.db import Database
from outreach.models.campaign import EmailStatus, ScheduledEmail
from tests.campaign.conftest import make_list, make_outbox_mailbox, make_template
from tests.campaign.test_crashes import START
from tests.conftest import create_user


@pytest.mark.usefixtures("jobs_on")
async def test_two_workers_respect_the_cap_and_send_once(
    committing_database: Database, outbox_settings: Settings, frozen_clock: Clock
) -> None:
    frozen_clock.freeze(START - timedelta(hours=1))
    async with committing_database.session() as session:
        user = await create_user(session, "busy@example.com", balance=100)
        mailbox = await make_outbox_mailbox(session, user, cap=7)
        recipients = await make_list(
            session, user, [{"email": f"p{n}@org{n}.com", "company": f"Org {n}"} for n in range(20)]
        )
        template_id = await make_template(session, user)
        campaign = await campaign_service.create(
            session,
            user=user,
            data=CampaignCreate(
                name="race",
                mailbox_id=mailbox.id,
                template_id=template_id,
                list_id=recipients.id,
                start_at=START,
                min_gap_seconds=0,
                jitter_seconds=0,
                company_cap=None,
            ),
        )
        await campaign_service.schedule(session, user=user, campaign=campaign)
    await sending.prepare_campaign_emails(committing_database, campaign.id)
    async with committing_database.session() as session:
        # Everything due at once: only the cap holds them back.
        await session.execute(
            update(ScheduledEmail)
            .where(ScheduledEmail.campaign_id == campaign.id)
            .values(due_at=START)
        )
    frozen_clock.freeze(START + timedelta(minutes=1))
    for _ in range(3):
        await asyncio.gather(
            sending.send_due_emails(committing_database),
            sending.send_due_emails(committing_database),
        )
    async with committing_database.session() as session:
        rows = (
            await session.scalars(
                select(ScheduledEmail).where(ScheduledEmail.campaign_id == campaign.id)
            )
        ).all()
    sent = [r for r in rows if r.status == EmailStatus.sent]
    assert len(sent) == 7
    files = list((outbox_settings.outbox_path / str(mailbox.id)).glob("*.eml"))
    assert len(files) == 7
    assert {r.status for r in rows} == {EmailStatus.sent, EmailStatus.ready}
    waiting = [r for r in rows if r.status == EmailStatus.ready]
    assert all(r.due_at > START + timedelta(hours=12) for r in waiting)  # next windows


async def _parallel_campaigns(
    database: Database, frozen_clock: Clock, *, mailboxes: int, per_mailbox: int
) -> tuple[list[uuid.UUID], list[uuid.UUID]]:
    """``mailboxes`` outbox mailboxes, each with a scheduled campaign of ``per_mailbox``
    prepared emails due at START + 1 minute (the clock's time on return)."""
    frozen_clock.freeze(START - timedelta(hours=1))
    campaign_ids, mailbox_ids = [], []
    async with database.session() as session:
        user = await create_user(session, "parallel@example.com", balance=100)
        template_id = await make_template(session, user)
        for index in range(mailboxes):
            mailbox = await make_outbox_mailbox(session, user, address=f"box{index}@example.com")
            recipients = await make_list(
                session,
                user,
                [
                    {"email": f"q{index}-{n}@corp{n}.com", "company": f"C{n}"}
                    for n in range(per_mailbox)
                ],
            )
            campaign = await campaign_service.create(
                session,
                user=user,
                data=CampaignCreate(
                    name=f"parallel {index}",
                    mailbox_id=mailbox.id,
                    template_id=template_id,
                    list_id=recipients.id,
                    start_at=START,
                    min_gap_seconds=0,
                    jitter_seconds=0,
                    company_cap=None,
                ),
            )
            await campaign_service.schedule(session, user=user, campaign=campaign)
            campaign_ids.append(campaign.id)
            mailbox_ids.append(mailbox.id)
    for campaign_id in campaign_ids:
        await sending.prepare_campaign_emails(database, campaign_id)
    async with database.session() as session:
        await session.execute(
            update(ScheduledEmail)
            .where(ScheduledEmail.campaign_id.in_(campaign_ids))
            .values(due_at=START)
        )
    frozen_clock.freeze(START + timedelta(minutes=1))
    return campaign_ids, mailbox_ids


@pytest.mark.usefixtures("jobs_on")
async def test_parallel_sends_over_several_mailboxes_record_every_outcome_once(
    committing_database: Database, outbox_settings: Settings, frozen_clock: Clock
) -> None:
    """The production path: sends in parallel (one mailbox's sends start while the
    next is claimed), outcomes written by the group-committing recorder."""
    from outreach.config import use_settings

    use_settings(outbox_settings.model_copy(update={"send_concurrency": 4}))
    campaign_ids, _ = await _parallel_campaigns(
        committing_database, frozen_clock, mailboxes=3, per_mailbox=6
    )
    assert await sending.send_due_emails(committing_database) == 18
    assert await sending.send_due_emails(committing_database) == 0
    async with committing_database.session() as session:
        rows = (
            await session.scalars(
                select(ScheduledEmail).where(ScheduledEmail.campaign_id.in_(campaign_ids))
            )
        ).all()
    assert len(rows) == 18
    assert {r.status for r in rows} == {EmailStatus.sent}
    assert all(r.provider_message_id and r.sent_at for r in rows)
    files = list(outbox_settings.outbox_path.glob("*/*.eml"))
    assert len(files) == 18
    assert len({r.provider_message_id for r in rows}) == 18


@pytest.mark.usefixtures("jobs_on")
async def test_sends_that_end_before_their_provider_call_never_stall_the_tick(
    committing_database: Database,
    outbox_settings: Settings,
    frozen_clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A send that ends before taking a concurrency slot (its mailbox cannot send right
    now) still makes room for the next claims: with far more such emails than the tick
    keeps claimed ahead (5 x 2 here), every mailbox is claimed, the good ones are sent,
    and the unavailable ones wait for a later try without counting an attempt."""
    from outreach.config import use_settings
    from outreach.mailbox.providers import MailboxUnavailable
    from outreach.mailbox.service import mailbox_service

    use_settings(outbox_settings.model_copy(update={"send_concurrency": 2}))
    campaign_ids, mailbox_ids = await _parallel_campaigns(
        committing_database, frozen_clock, mailboxes=5, per_mailbox=6
    )
    unavailable = set(mailbox_ids[:4])
    provider_for = mailbox_service.provider_for

    async def some_unavailable(session: Any, mailbox: Any) -> Any:
        if mailbox.id in unavailable:
            raise MailboxUnavailable("the SMTP password no longer works")
        return await provider_for(session, mailbox)

    monkeypatch.setattr(mailbox_service, "provider_for", some_unavailable)
    # A stalled tick would wait forever: the bound turns that into a failure.
    claimed = await asyncio.wait_for(sending.send_due_emails(committing_database), 300)
    assert claimed == 30
    async with committing_database.session() as session:
        rows = (
            await session.scalars(
                select(ScheduledEmail).where(ScheduledEmail.campaign_id.in_(campaign_ids))
            )
        ).all()
    sent = [r for r in rows if r.status == EmailStatus.sent]
    waiting = [r for r in rows if r.status == EmailStatus.ready]
    assert {r.mailbox_id for r in sent} == {mailbox_ids[4]}
    assert len(sent) == 6
    assert len(waiting) == 24
    assert {r.mailbox_id for r in waiting} == unavailable
    assert all(r.attempts == 0 and r.next_attempt_at is not None for r in waiting)
    assert all("SMTP password" in (r.last_error or "") for r in waiting)
    assert len(list(outbox_settings.outbox_path.glob("*/*.eml"))) == 6
