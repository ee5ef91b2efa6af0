"""The clock jumps across the mailbox's day boundary, and its time zone changes to or
from daylight saving time.

The daily cap counts the mailbox's own day (New York here, five hours behind UTC,
so its midnight is not UTC's): a jump over that midnight frees the cap, a jump back
frees nothing, a jump of days sends what is due without exceeding any day.
Emails due inside the hour that is skipped (spring) or repeated (autumn) are each
sent once, none lost, every local day within the cap.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.campaign import sending
from outreach.campaign.schemas import CampaignCreate
from outreach.campaign.service import campaign_service
from outreach.config import Settings
from outreach.kit.clock import Clock
from outreach.kit.db import Database
from outreach.models.campaign import EmailStatus, ScheduledEmail
from tests.campaign.conftest import make_list, make_outbox_mailbox, make_template
from tests.conftest import create_user
from tests.faults.invariants import Summary, check_invariants, outbox_deliveries

NEW_YORK = ZoneInfo("America/New_York")
EVERY_DAY = [0, 1, 2, 3, 4, 5, 6]


def local(year: int, month: int, day: int, hour: int, minute: int = 0, fold: int = 0) -> datetime:
    """A New York wall-clock time, as the instant it names."""
    return datetime(year, month, day, hour, minute, tzinfo=NEW_YORK, fold=fold).astimezone(UTC)


async def campaign_in_new_york(
    session: AsyncSession,
    *,
    emails: int,
    cap: int,
    start_at: datetime,
    window: tuple[str, str] = ("00:00", "23:59"),
    min_gap_seconds: int = 60,
) -> uuid.UUID:
    user = await create_user(session, "nyc@example.com", balance=50)
    mailbox = await make_outbox_mailbox(
        session, user, address="nyc@example.com", cap=cap, timezone="America/New_York"
    )
    rows = [{"email": f"p{n}@org{n}.com", "company": f"Org {n}"} for n in range(emails)]
    recipients = await make_list(session, user, rows)
    campaign = await campaign_service.create(
        session,
        user=user,
        data=CampaignCreate(
            name="New York",
            mailbox_id=mailbox.id,
            template_id=await make_template(session, user),
            list_id=recipients.id,
            start_at=start_at,
            window_days=EVERY_DAY,
            window_start=window[0],
            window_end=window[1],
            min_gap_seconds=min_gap_seconds,
            jitter_seconds=0,
            company_cap=None,
        ),
    )
    await campaign_service.schedule(session, user=user, campaign=campaign)
    await session.flush()
    return campaign.id


async def make_all_due(session: AsyncSession, campaign_id: uuid.UUID, at: datetime) -> None:
    await session.execute(
        update(ScheduledEmail)
        .where(
            ScheduledEmail.campaign_id == campaign_id,
            ScheduledEmail.status == EmailStatus.ready,
        )
        .values(due_at=at)
    )


async def sent_per_local_day(session: AsyncSession) -> Counter[date]:
    sent_at = await session.scalars(
        select(ScheduledEmail.sent_at).where(ScheduledEmail.status == EmailStatus.sent)
    )
    return Counter(moment.astimezone(NEW_YORK).date() for moment in sent_at if moment)


async def settle(session: AsyncSession, settings: Settings) -> Summary:
    session.expire_all()
    return await check_invariants(session, delivered=outbox_deliveries(settings.outbox_path))


async def test_jumps_across_the_mailbox_midnight_keep_the_cap_of_its_own_day(
    database: Database,
    session: AsyncSession,
    outbox_settings: Settings,
    frozen_clock: Clock,
) -> None:
    frozen_clock.freeze(local(2026, 11, 30, 20))
    campaign_id = await campaign_in_new_york(
        session, emails=7, cap=2, start_at=local(2026, 11, 30, 21)
    )
    await sending.prepare_campaign_emails(database, campaign_id)
    # A backlog: everything due before midnight, so only the cap holds it back.
    await make_all_due(session, campaign_id, local(2026, 11, 30, 21))
    frozen_clock.freeze(local(2026, 11, 30, 23, 50))  # 04:50 UTC on 1 December
    await sending.send_due_emails(database)
    assert (await settle(session, outbox_settings)).statuses[EmailStatus.sent] == 2

    # Twenty minutes later: still 1 December in UTC, a new day in New York.
    frozen_clock.freeze(local(2026, 12, 1, 0, 10))
    for _ in range(3):
        await sending.send_due_emails(database)
        frozen_clock.advance(timedelta(minutes=2))
    assert await sent_per_local_day(session) == {date(2026, 11, 30): 2, date(2026, 12, 1): 2}

    # The clock is set back a day (a bad NTP correction) with the rest due: the sends
    # stamped later still count against that earlier day, so nothing more goes out.
    await make_all_due(session, campaign_id, local(2026, 11, 29, 21))
    frozen_clock.freeze(local(2026, 11, 29, 22))
    await sending.send_due_emails(database)
    assert sum((await sent_per_local_day(session)).values()) == 4

    # The worker was down for three days: the rest goes, never past one day's cap.
    frozen_clock.freeze(local(2026, 12, 4, 12))
    for _ in range(6):
        await sending.send_due_emails(database)
        frozen_clock.advance(timedelta(hours=6))
    summary = await settle(session, outbox_settings)
    assert summary.statuses == {EmailStatus.sent: 7}
    assert max((await sent_per_local_day(session)).values()) == 2


async def run_ticks_across(
    database: Database, clock: Clock, start: datetime, end: datetime, every: timedelta
) -> None:
    clock.freeze(start)
    while clock.now() <= end:
        await sending.send_due_emails(database)
        clock.advance(every)


async def assert_each_sent_once_after_its_time(
    session: AsyncSession, settings: Settings, emails: int, cap: int
) -> None:
    summary = await settle(session, settings)
    assert summary.statuses == {EmailStatus.sent: emails}
    assert summary.delivered == emails
    rows = (await session.execute(select(ScheduledEmail.due_at, ScheduledEmail.sent_at))).all()
    assert all(sent_at is not None and sent_at >= due_at for due_at, sent_at in rows)
    assert max((await sent_per_local_day(session)).values()) <= cap


async def test_emails_due_in_the_skipped_spring_hour_are_sent_once(
    database: Database,
    session: AsyncSession,
    outbox_settings: Settings,
    frozen_clock: Clock,
) -> None:
    """14 March 2027, New York: 02:00 EST is 03:00 EDT; that day has 23 hours."""
    frozen_clock.freeze(local(2027, 3, 13, 12))
    campaign_id = await campaign_in_new_york(
        session,
        emails=8,
        cap=6,
        start_at=local(2027, 3, 14, 1),
        window=("01:00", "04:00"),
        min_gap_seconds=15 * 60,
    )
    await sending.prepare_campaign_emails(database, campaign_id)
    due = sorted((await session.scalars(select(ScheduledEmail.due_at))).all())
    # Planned across the jump: 01:00 … 01:45 EST, then 03:00 … EDT; two spill to the next day.
    assert due[4] == local(2027, 3, 14, 3)
    assert [d.astimezone(NEW_YORK).day for d in due] == [14] * 6 + [15] * 2
    for day in (14, 15):  # ticks through each night's window
        await run_ticks_across(
            database,
            frozen_clock,
            local(2027, 3, day, 0, 50),
            local(2027, 3, day, 4, 10),
            timedelta(minutes=5),
        )
    await assert_each_sent_once_after_its_time(session, outbox_settings, emails=8, cap=6)


async def test_emails_due_in_the_repeated_autumn_hour_are_sent_once(
    database: Database,
    session: AsyncSession,
    outbox_settings: Settings,
    frozen_clock: Clock,
) -> None:
    """1 November 2026, New York: 02:00 EDT is 01:00 EST; 01:00–02:00 happens twice."""
    frozen_clock.freeze(local(2026, 10, 31, 12))
    campaign_id = await campaign_in_new_york(
        session,
        emails=10,
        cap=10,
        start_at=local(2026, 11, 1, 0, 30),
        window=("00:30", "03:00"),
        min_gap_seconds=15 * 60,
    )
    await sending.prepare_campaign_emails(database, campaign_id)
    due = sorted((await session.scalars(select(ScheduledEmail.due_at))).all())
    in_repeated_hour = [d for d in due if d.astimezone(NEW_YORK).hour == 1]
    assert len(in_repeated_hour) == 8  # four in each pass through 01:00–02:00
    await run_ticks_across(
        database,
        frozen_clock,
        local(2026, 11, 1, 0, 20),
        local(2026, 11, 1, 3, 30),
        timedelta(minutes=4),
    )
    await assert_each_sent_once_after_its_time(session, outbox_settings, emails=10, cap=10)
    assert await sent_per_local_day(session) == {date(2026, 11, 1): 10}
