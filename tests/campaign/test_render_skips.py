"""Issue 17 item 2: one recipient whose email cannot be rendered is skipped with a
reason while the others go ahead; a template saved by an older release that no longer
renders never makes preview, schedule, test-send or the outreach plan answer 500."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.config import Settings
from outreach.kit.clock import Clock
from outreach.models import Campaign, Recipient
from tests.campaign.test_flow import MONDAY_0830_IST, setup_campaign
from tests.template.test_render_safety import LEGACY_SOURCES, saved_as_legacy


class TestRenderFailures:
    async def test_one_unrenderable_recipient_is_skipped_with_a_reason(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        outbox_settings: Settings,
        frozen_clock: Clock,
    ) -> None:
        """One recipient's long notes pass the output budget; the others are sent."""
        frozen_clock.freeze(MONDAY_0830_IST - timedelta(hours=1))
        ctx = await setup_campaign(client, session)
        campaign = await session.get(Campaign, uuid.UUID(ctx["campaign"]["id"]))
        assert campaign is not None
        notes = "{{ notes }}" * 60
        await saved_as_legacy(
            session,
            str(campaign.template_id),
            "Hi {{ first_name|default('there') }}{% if notes %}" + notes + "{% endif %}",
        )
        await session.execute(
            update(Recipient)
            .where(Recipient.email == "meera@globex.com")
            .values(custom_fields={"notes": "n" * 2_000})
        )
        await session.flush()
        url = f"/v1/campaigns/{campaign.id}"
        preview = await client.post(f"{url}/preview")
        assert preview.status_code == 200, preview.text
        body = preview.json()
        assert body["skipped"]["render_failed"] == 1
        skipped = {s["email"]: s for s in body["skipped_examples"]}
        assert skipped["meera@globex.com"]["reason"] == "render_failed"
        assert "longer than" in skipped["meera@globex.com"]["detail"]
        assert body["to_send"] == 3  # ravi, nocompany and kiran
        plan = await client.get(f"{url}/outreach-plan")
        assert plan.status_code == 200, plan.text
        checks = {check["key"]: check for check in plan.json()["checks"]}
        assert checks["render_failed"]["status"] == "warn"
        assert checks["render_failed"]["value"] == 1
        scheduled = await client.post(f"{url}/schedule", headers={"Idempotency-Key": "k"})
        assert scheduled.status_code == 202, scheduled.text
        assert scheduled.json()["scheduled"] == 3

    @pytest.mark.parametrize("body_text", LEGACY_SOURCES)
    async def test_a_legacy_template_never_answers_500(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        outbox_settings: Settings,
        frozen_clock: Clock,
        body_text: str,
    ) -> None:
        frozen_clock.freeze(MONDAY_0830_IST - timedelta(hours=1))
        ctx = await setup_campaign(client, session)
        campaign = await session.get(Campaign, uuid.UUID(ctx["campaign"]["id"]))
        assert campaign is not None
        await saved_as_legacy(session, str(campaign.template_id), body_text)
        url = f"/v1/campaigns/{campaign.id}"
        preview = await client.post(f"{url}/preview")
        assert preview.status_code == 200, preview.text
        assert preview.json()["to_send"] == 0
        assert set(preview.json()["skipped"]) >= {"render_failed"}
        plan = await client.get(f"{url}/outreach-plan")
        assert plan.status_code == 200, plan.text
        test_send = await client.post(f"{url}/test-send")
        assert test_send.status_code == 422, test_send.text
        scheduled = await client.post(f"{url}/schedule", headers={"Idempotency-Key": "k"})
        assert scheduled.status_code == 422, scheduled.text
