"""Review mode, test sends, pause/resume, the email list, caps across campaigns."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.campaign.sending import send_due_emails
from outreach.config import Settings
from outreach.kit.clock import Clock
from outreach.kit.db import Database
from outreach.models.campaign import EmailStatus, ScheduledEmail
from tests.campaign.test_flow import MONDAY_0830_IST, setup_campaign
from tests.conftest import wait_for_jobs


async def schedule(client: httpx.AsyncClient, campaign_id: str) -> None:
    response = await client.post(
        f"/v1/campaigns/{campaign_id}/schedule", headers={"Idempotency-Key": str(uuid.uuid4())}
    )
    assert response.status_code == 202, response.text
    await wait_for_jobs()


async def test_review_mode_waits_for_approval(
    client: httpx.AsyncClient,
    session: AsyncSession,
    database: Database,
    outbox_settings: Settings,
    frozen_clock: Clock,
) -> None:
    frozen_clock.freeze(MONDAY_0830_IST - timedelta(hours=1))
    ctx = await setup_campaign(client, session, review_mode=True)
    campaign_id = ctx["campaign"]["id"]
    await schedule(client, campaign_id)
    waiting = (
        await client.get(
            f"/v1/campaigns/{campaign_id}/emails", params={"status": "awaiting_approval"}
        )
    ).json()
    assert len(waiting["items"]) == 3
    frozen_clock.freeze(MONDAY_0830_IST + timedelta(hours=2))
    assert await send_due_emails(database) == 0  # nothing goes out unapproved
    one = waiting["items"][0]["id"]
    too_many = [str(uuid.uuid4()) for _ in range(10_001)]  # past what one statement binds
    refused = await client.post(
        f"/v1/campaigns/{campaign_id}/approve", json={"email_ids": [one, *too_many]}
    )
    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["errors"][0]["loc"][-1] == "email_ids"
    approved = await client.post(f"/v1/campaigns/{campaign_id}/approve", json={"email_ids": [one]})
    assert approved.json() == {"approved": 1}
    assert await send_due_emails(database) == 1
    rest = await client.post(f"/v1/campaigns/{campaign_id}/approve", json={})
    assert rest.json() == {"approved": 2}
    assert await send_due_emails(database) == 2


async def test_test_send_goes_to_the_sender_only_and_is_free(
    client: httpx.AsyncClient, session: AsyncSession, outbox_settings: Settings
) -> None:
    ctx = await setup_campaign(client, session)
    before = (await client.get("/v1/credits/balance")).json()["balance"]
    response = await client.post(f"/v1/campaigns/{ctx['campaign']['id']}/test-send")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["to"] == "me@example.com"
    assert body["provider"] == "outbox"
    assert body["subject"].startswith("[Test] Hello")
    assert (await client.get("/v1/credits/balance")).json()["balance"] == before


async def test_pause_stops_sending_and_resume_respreads(
    client: httpx.AsyncClient,
    session: AsyncSession,
    database: Database,
    outbox_settings: Settings,
    frozen_clock: Clock,
) -> None:
    frozen_clock.freeze(MONDAY_0830_IST - timedelta(hours=1))
    ctx = await setup_campaign(client, session)
    campaign_id = ctx["campaign"]["id"]
    await schedule(client, campaign_id)
    paused = await client.post(f"/v1/campaigns/{campaign_id}/pause")
    assert paused.json()["status"] == "paused"
    frozen_clock.freeze(MONDAY_0830_IST + timedelta(days=2))  # Wednesday, all overdue
    assert await send_due_emails(database) == 0
    again = await client.post(f"/v1/campaigns/{campaign_id}/pause")
    assert again.status_code == 409
    resumed = await client.post(f"/v1/campaigns/{campaign_id}/resume")
    assert resumed.json()["status"] == "scheduled"
    due = (
        await session.scalars(
            select(ScheduledEmail.due_at).where(
                ScheduledEmail.campaign_id == uuid.UUID(campaign_id)
            )
        )
    ).all()
    assert all(d >= frozen_clock.now() for d in due)  # spread from now, not sent in a burst
    for _ in range(12):
        frozen_clock.advance(timedelta(minutes=5))
        await send_due_emails(database)
    statuses = (
        await session.scalars(
            select(ScheduledEmail.status).where(
                ScheduledEmail.campaign_id == uuid.UUID(campaign_id)
            )
        )
    ).all()
    assert set(statuses) == {EmailStatus.sent}


async def test_daily_cap_holds_across_campaigns_of_one_mailbox(
    client: httpx.AsyncClient,
    session: AsyncSession,
    database: Database,
    outbox_settings: Settings,
    frozen_clock: Clock,
) -> None:
    frozen_clock.freeze(MONDAY_0830_IST - timedelta(hours=1))
    ctx = await setup_campaign(client, session, daily_cap=2, min_gap_seconds=0)
    await schedule(client, ctx["campaign"]["id"])
    rows = (
        await session.scalars(
            select(ScheduledEmail).where(
                ScheduledEmail.campaign_id == uuid.UUID(ctx["campaign"]["id"])
            )
        )
    ).all()
    days = sorted({r.due_at.date() for r in rows})
    assert len(days) == 2  # 2 on Monday, 1 on Tuesday
    # Even if every email is made due now, a tick never exceeds the mailbox's cap today.
    for row in rows:
        row.due_at = MONDAY_0830_IST
    ctx["mailbox"].daily_cap = 2
    await session.flush()
    frozen_clock.freeze(MONDAY_0830_IST + timedelta(hours=1))
    assert await send_due_emails(database) == 2
    assert await send_due_emails(database) == 0
    leftover = await session.scalar(
        select(ScheduledEmail)
        .where(ScheduledEmail.status == EmailStatus.ready)
        .execution_options(populate_existing=True)
    )
    assert leftover is not None
    assert leftover.due_at > MONDAY_0830_IST + timedelta(hours=12)  # moved to the next window


async def test_another_users_campaign_is_404(
    client: httpx.AsyncClient, session: AsyncSession, outbox_settings: Settings, app: object
) -> None:
    ctx = await setup_campaign(client, session)
    from tests.conftest import make_client, sign_in

    async with make_client(app) as other:  # type: ignore[arg-type]
        await sign_in(other, "eve@example.com")
        for response in (
            await other.get(f"/v1/campaigns/{ctx['campaign']['id']}"),
            await other.post(f"/v1/campaigns/{ctx['campaign']['id']}/preview"),
            await other.post(
                f"/v1/campaigns/{ctx['campaign']['id']}/schedule", headers={"Idempotency-Key": "x"}
            ),
        ):
            assert response.status_code == 404


@pytest.mark.parametrize("built_at_send_time", [False, True])
async def test_attached_resume_goes_out_as_uploaded(
    built_at_send_time: bool,
    client: httpx.AsyncClient,
    session: AsyncSession,
    database: Database,
    outbox_settings: Settings,
    frozen_clock: Clock,
    app: object,
) -> None:
    import email as email_lib
    from email import policy

    from outreach.models.resume import Resume

    frozen_clock.freeze(MONDAY_0830_IST - timedelta(hours=1))
    no_resume = await setup_campaign(client, session, attach_resume=True)
    refused = await client.post(
        f"/v1/campaigns/{no_resume['campaign']['id']}/schedule", headers={"Idempotency-Key": "r"}
    )
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["loc"] == ["body", "attach_resume"]

    pdf = b"%PDF-1.4 the resume exactly as uploaded"
    await app.state.storage.put("resumes/cv-asha.pdf", pdf)  # type: ignore[attr-defined]
    session.add(
        Resume(
            user_id=no_resume["user"].id,
            file_key="resumes/cv-asha.pdf",
            file_name="Asha Rao CV.pdf",
            kind="pdf",
            size_bytes=len(pdf),
            sha256="0" * 64,
            page_count=1,
            text="x",
            sections={},
            contact={},
            skills=[],
            years_experience=None,
            layout={},
        )
    )
    await session.flush()
    await schedule(client, no_resume["campaign"]["id"])
    storage = app.state.storage  # type: ignore[attr-defined]
    reads: list[str] = []
    if built_at_send_time:
        # As for send-only Gmail and SMTP with a resume: no draft, no stored message,
        # so each message is built at send time; the file is read once per tick.
        await session.execute(
            update(ScheduledEmail)
            .where(ScheduledEmail.campaign_id == uuid.UUID(no_resume["campaign"]["id"]))
            .values(draft_id=None)
        )
        original_get = storage.get

        async def counting_get(key: str) -> bytes:
            reads.append(key)
            return await original_get(key)

        storage.get = counting_get
    frozen_clock.freeze(MONDAY_0830_IST + timedelta(hours=3))
    try:
        assert await send_due_emails(database) == 3
    finally:
        storage.__dict__.pop("get", None)
    assert reads == (["resumes/cv-asha.pdf"] if built_at_send_time else [])
    outbox = outbox_settings.outbox_path / str(no_resume["mailbox"].id)
    for path in outbox.glob("*.eml"):
        message = email_lib.message_from_bytes(path.read_bytes(), policy=policy.default)
        attachments = list(message.iter_attachments())
        assert [a.get_filename() for a in attachments] == ["Asha Rao CV.pdf"]
        assert attachments[0].get_content() == pdf


async def test_campaign_cap_below_the_mailbox_cap_holds_at_send_time(
    client: httpx.AsyncClient,
    session: AsyncSession,
    database: Database,
    outbox_settings: Settings,
    frozen_clock: Clock,
) -> None:
    frozen_clock.freeze(MONDAY_0830_IST - timedelta(hours=1))
    ctx = await setup_campaign(client, session, daily_cap=2, min_gap_seconds=0)
    await schedule(client, ctx["campaign"]["id"])
    campaign_id = uuid.UUID(ctx["campaign"]["id"])
    rows = (
        await session.scalars(
            select(ScheduledEmail).where(ScheduledEmail.campaign_id == campaign_id)
        )
    ).all()
    for row in rows:
        row.due_at = MONDAY_0830_IST  # all due now; the mailbox itself allows 250 a day
    await session.flush()
    frozen_clock.freeze(MONDAY_0830_IST + timedelta(hours=1))
    assert await send_due_emails(database) == 2
    assert await send_due_emails(database) == 0
    leftover = await session.scalar(
        select(ScheduledEmail)
        .where(
            ScheduledEmail.campaign_id == campaign_id, ScheduledEmail.status == EmailStatus.ready
        )
        .execution_options(populate_existing=True)
    )
    assert leftover is not None
    assert leftover.due_at > MONDAY_0830_IST + timedelta(hours=12)


async def test_resume_respreads_in_each_recipients_own_hours(
    session: AsyncSession, outbox_settings: Settings, frozen_clock: Clock
) -> None:
    """Overdue emails move into the recipient's business hours (when the campaign sends
    in them) and keep the company cap, exactly as when the campaign was scheduled."""
    from datetime import time
    from zoneinfo import ZoneInfo

    from outreach.campaign.schemas import CampaignCreate
    from outreach.campaign.service import campaign_service
    from outreach.models import Campaign, Mailbox
    from tests.campaign.conftest import make_list, make_outbox_mailbox, make_template
    from tests.conftest import create_user

    frozen_clock.freeze(MONDAY_0830_IST - timedelta(hours=1))
    user = await create_user(session, "zones@example.com", balance=20)
    mailbox = await make_outbox_mailbox(session, user, address="zones@example.com")
    rows = [
        {"email": "a@acme.com", "company": "Acme", "timezone": "America/New_York"},
        {"email": "b@acme.com", "company": "Acme", "timezone": "America/New_York"},
        {"email": "c@acme.com", "company": "Acme", "timezone": "America/New_York"},
        {"email": "d@initech.com", "company": "Initech", "timezone": "Europe/Berlin"},
        {"email": "e@globex.com", "company": "Globex"},  # no zone: the campaign's
    ]
    recipient_list = await make_list(session, user, rows)
    campaign = await campaign_service.create(
        session,
        user=user,
        data=CampaignCreate(
            name="zones",
            mailbox_id=mailbox.id,
            template_id=await make_template(session, user),
            list_id=recipient_list.id,
            start_at=MONDAY_0830_IST,
            min_gap_seconds=0,
            jitter_seconds=0,
            use_recipient_timezone=True,
            company_cap=2,
        ),
    )
    await campaign_service.schedule(session, user=user, campaign=campaign)
    await campaign_service.pause(session, campaign=campaign, reason="test")
    frozen_clock.freeze(MONDAY_0830_IST + timedelta(days=9))  # everything is overdue
    await campaign_service.resume(session, user=user, campaign=campaign)

    refreshed = await session.get_one(Campaign, campaign.id)
    box = await session.get_one(Mailbox, mailbox.id)
    assert refreshed.status.value == "scheduled"
    emails = {
        e.to_address: e
        for e in await session.scalars(
            select(ScheduledEmail).where(ScheduledEmail.campaign_id == campaign.id)
        )
    }
    start = time.fromisoformat(refreshed.window_start)
    end = time.fromisoformat(refreshed.window_end)
    for address, zone in [
        ("a@acme.com", "America/New_York"),
        ("b@acme.com", "America/New_York"),
        ("c@acme.com", "America/New_York"),
        ("d@initech.com", "Europe/Berlin"),
        ("e@globex.com", box.timezone),
    ]:
        local = emails[address].due_at.astimezone(ZoneInfo(zone))
        assert emails[address].due_at >= frozen_clock.now()
        assert local.weekday() < 5, (address, local)
        assert start <= local.time() <= end, (address, local)
    acme = sorted(emails[a].due_at for a in ("a@acme.com", "b@acme.com", "c@acme.com"))
    assert acme[2] - acme[0] >= timedelta(days=7)  # the company cap still holds
