"""Follow-up steps through the API: charged when scheduled, refused (422) for a mailbox
that cannot see replies unless the user opts in, given their time and thread once the
previous step is sent, stopped and refunded by hand, and counted per step."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.campaign.followups import add_business_days
from outreach.campaign.sending import send_due_emails
from outreach.campaign.sequences import advance_sequences
from outreach.config import Settings
from outreach.credits.service import credit_service
from outreach.kit.clock import Clock
from outreach.kit.db import Database
from outreach.models.campaign import EmailStatus, ScheduledEmail
from tests.campaign.conftest import make_template
from tests.campaign.test_flow import MONDAY_0830_IST, setup_campaign

SENDABLE = 3  # setup_campaign's list: 6 rows; suppressed, undeliverable, no company


async def _with_step(client: httpx.AsyncClient, session: AsyncSession, **overrides: object) -> dict:  # type: ignore[type-arg]
    ctx = await setup_campaign(client, session)
    nudge = await make_template(
        session, ctx["user"], name="Nudge", body_text="Hi {{ first_name | default('there') }}!"
    )
    await session.flush()
    response = await client.patch(
        f"/v1/campaigns/{ctx['campaign']['id']}",
        json={"steps": [{"template_id": str(nudge), "delay_business_days": 2}], **overrides},
    )
    assert response.status_code == 200, response.text
    ctx["campaign"] = response.json()
    return ctx


async def _schedule(client: httpx.AsyncClient, campaign_id: str) -> httpx.Response:
    return await client.post(
        f"/v1/campaigns/{campaign_id}/schedule", headers={"Idempotency-Key": "go"}
    )


class TestSteps:
    async def test_a_mailbox_that_cannot_see_replies_refuses_follow_ups_with_a_422(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        outbox_settings: Settings,
        frozen_clock: Clock,
    ) -> None:
        frozen_clock.freeze(MONDAY_0830_IST - timedelta(hours=1))
        ctx = await _with_step(client, session)
        campaign = ctx["campaign"]
        assert campaign["reply_detection"] == "unavailable"
        assert campaign["steps"][0]["position"] == 1
        assert campaign["steps"][0]["delay_business_days"] == 2
        balance = await credit_service.get_balance(session, user_id=ctx["user"].id)

        refused = await _schedule(client, campaign["id"])
        assert refused.status_code == 422
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["code"] == "reply_detection_unavailable"
        assert refused.json()["errors"][0]["loc"] == ["body", "steps"]
        assert await credit_service.get_balance(session, user_id=ctx["user"].id) == balance

    async def test_bad_steps_are_a_422_naming_the_field(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        outbox_settings: Settings,
    ) -> None:
        ctx = await setup_campaign(client, session)
        url = f"/v1/campaigns/{ctx['campaign']['id']}"
        template = ctx["campaign"]["template_id"]
        too_long = await client.patch(
            url, json={"steps": [{"template_id": template, "delay_business_days": 15}]}
        )
        too_many = await client.patch(url, json={"steps": [{"template_id": template}] * 4})
        someone_elses = await client.patch(
            url, json={"steps": [{"template_id": str(uuid.uuid4())}]}
        )
        assert too_long.status_code == 422
        assert "delay_business_days" in too_long.text
        assert too_many.status_code == 422
        assert someone_elses.status_code == 404

    async def test_opted_in_follow_ups_are_charged_then_threaded_after_the_first_email(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        database: Database,
        outbox_settings: Settings,
        frozen_clock: Clock,
    ) -> None:
        frozen_clock.freeze(MONDAY_0830_IST - timedelta(hours=1))
        ctx = await _with_step(client, session, followups_without_reply_detection=True)
        balance = await credit_service.get_balance(session, user_id=ctx["user"].id)
        scheduled = await _schedule(client, ctx["campaign"]["id"])
        assert scheduled.status_code == 202, scheduled.text
        assert scheduled.json()["charged_credits"] == 2 * SENDABLE
        after = await credit_service.get_balance(session, user_id=ctx["user"].id)
        assert after == balance - 2 * SENDABLE

        frozen_clock.freeze(MONDAY_0830_IST + timedelta(hours=1))
        from outreach.campaign.sending import prepare_campaign_emails

        await prepare_campaign_emails(database, uuid.UUID(ctx["campaign"]["id"]))
        for _ in range(4):
            await send_due_emails(database)
            frozen_clock.advance(timedelta(minutes=10))
        assert await advance_sequences(database) == SENDABLE
        firsts = {
            e.to_address: e
            for e in await session.scalars(select(ScheduledEmail).where(ScheduledEmail.step == 0))
        }
        for followup in await session.scalars(
            select(ScheduledEmail).where(ScheduledEmail.step == 1)
        ):
            first = firsts[followup.to_address]
            assert first.status == EmailStatus.sent
            # pending, or already prepared by the job the sequence step enqueued
            assert followup.status in (EmailStatus.pending, EmailStatus.ready)
            assert followup.previous_email_id == first.id
            assert followup.in_reply_to == first.rfc822_message_id
            assert followup.reference_ids == first.rfc822_message_id
            assert followup.subject == "Re: " + first.subject
            assert first.sent_at is not None
            # Monday + 2 business days = Wednesday, inside the 09:00-17:00 IST window
            earliest = add_business_days(
                first.sent_at,
                2,
                weekdays=frozenset(range(5)),
                zone=__import__("zoneinfo").ZoneInfo("Asia/Kolkata"),
            )
            assert followup.due_at >= earliest
            assert followup.due_at.date() == earliest.date()
        assert await advance_sequences(database) == 0  # nothing twice


class TestMarkReplied:
    async def test_marking_by_hand_stops_and_refunds_once_and_shows_in_stats(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        database: Database,
        outbox_settings: Settings,
        frozen_clock: Clock,
    ) -> None:
        frozen_clock.freeze(MONDAY_0830_IST - timedelta(hours=1))
        ctx = await _with_step(client, session, followups_without_reply_detection=True)
        campaign_id = ctx["campaign"]["id"]
        assert (await _schedule(client, campaign_id)).status_code == 202
        url = f"/v1/campaigns/{campaign_id}/replied"

        early = await client.post(url, json={"email": "ravi@acme.com"})
        assert early.status_code == 409
        assert early.json()["code"] == "nothing_sent_yet"
        stranger = await client.post(url, json={"email": "who@else.com"})
        assert stranger.status_code == 404
        assert stranger.json()["code"] == "recipient_not_in_campaign"

        frozen_clock.freeze(MONDAY_0830_IST + timedelta(hours=1))
        from outreach.campaign.sending import prepare_campaign_emails

        await prepare_campaign_emails(database, uuid.UUID(campaign_id))
        for _ in range(4):
            await send_due_emails(database)
            frozen_clock.advance(timedelta(minutes=10))
        balance = await credit_service.get_balance(session, user_id=ctx["user"].id)
        marked = await client.post(url, json={"email": "Ravi@Acme.com"})
        assert marked.status_code == 200, marked.text
        assert marked.json() == {
            "email": "ravi@acme.com",
            "recorded": True,
            "cancelled_followups": 1,
        }
        again = await client.post(url, json={"email": "ravi@acme.com"})
        assert again.json()["recorded"] is False
        # A reply ending the sequence is no problem of the campaign's: the cancelled
        # follow-up keeps its reason, and the campaign shows no latest error.
        campaign = (await client.get(f"/v1/campaigns/{campaign_id}")).json()
        assert campaign["last_error"] is None
        cancelled = (
            await client.get(f"/v1/campaigns/{campaign_id}/emails", params={"status": "cancelled"})
        ).json()["items"]
        assert [e["last_error"] for e in cancelled] == [
            "the sequence stopped: the recipient replied, bounced or left"
        ]
        assert await credit_service.get_balance(session, user_id=ctx["user"].id) == balance + 1

        stats = (await client.get(f"/v1/campaigns/{campaign_id}/stats")).json()
        assert stats["replied"] == 1
        assert stats["reply_rate"] == 0.3333
        assert stats["steps"][0] | {"reply_rate": None} == {
            "step": 0,
            "scheduled": 3,
            "sent": 3,
            "cancelled": 0,
            "replied": 1,
            "auto_replied": 0,
            "bounced": 0,
            "unsubscribed": 0,
            "reply_rate": None,
        }
        assert stats["steps"][1]["cancelled"] == 1
        assert stats["steps"][1]["scheduled"] == 3
        timeline = await client.get(
            f"/v1/campaigns/{campaign_id}/timeline", params={"email": "ravi@acme.com"}
        )
        assert [(e["step"], e["what"]) for e in timeline.json()["entries"]] == [
            (0, "sent"),
            (0, "replied"),
            (1, "cancelled"),
        ]
