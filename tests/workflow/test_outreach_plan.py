"""GET /v1/campaigns/{id}/outreach-plan: checks, risks, schedule, suggestions, advice."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.config import Settings, use_settings
from outreach.credits.service import credit_service
from outreach.kit.clock import Clock
from outreach.models import Campaign, Mailbox, MailboxStatus
from outreach.models.campaign import CampaignStatus
from outreach.workflow.outreach_plan import outreach_plan_with_preview
from tests.campaign.test_flow import MONDAY_0830_IST, setup_campaign
from tests.fakes.openai import FAKE_API_KEY, FAKE_MODEL, FakeOpenAI


async def plan_of(client: httpx.AsyncClient, campaign_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/campaigns/{campaign_id}/outreach-plan")
    assert response.status_code == 200, response.text
    return response.json()


def by_key(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["key"]: item for item in items}


@pytest.fixture
def llm_settings(settings: Settings, fake_openai: FakeOpenAI) -> Iterator[Settings]:
    changed = settings.model_copy(
        update={
            "llm_base_url": fake_openai.base_url,
            "llm_model": FAKE_MODEL,
            "llm_api_key": SecretStr(FAKE_API_KEY),
            "llm_max_retries": 0,
        }
    )
    use_settings(changed)
    yield changed
    use_settings(settings)


async def test_the_plan_of_a_draft_reuses_the_preview(
    client: httpx.AsyncClient, session: AsyncSession, frozen_clock: Clock
) -> None:
    frozen_clock.freeze(MONDAY_0830_IST - timedelta(hours=1))
    ctx = await setup_campaign(client, session)
    campaign_id = ctx["campaign"]["id"]

    plan = await plan_of(client, campaign_id)
    preview = (await client.post(f"/v1/campaigns/{campaign_id}/preview")).json()

    assert plan["ready"] is True
    checks = by_key(plan["checks"])
    assert {key: check["status"] for key, check in checks.items()} == {
        "campaign_state": "pass",
        "mailbox_health": "warn",  # the file outbox writes files
        "list_ready": "pass",
        "verification_coverage": "pass",
        "suppressed_share": "warn",  # 1 of 6
        "audience": "pass",
        "missing_variables": "warn",
        "credit_balance": "pass",
    }
    assert checks["suppressed_share"]["value"] == round(1 / 6, 4)
    assert checks["missing_variables"]["value"] == 1
    assert plan["schedule"] == preview["schedule"]  # the same planner, the same plan
    assert plan["audience"] == {
        "recipients": 6,
        "unique": 6,
        "by_verification": {"deliverable": 5, "undeliverable": 1},
        "suppressed": 1,
        "to_send": preview["to_send"],
        "skipped": preview["skipped"],
    }
    assert plan["cost"] == {"credit_cost": 3, "credit_balance": 20, "shortfall": 0}
    risks = by_key(plan["risks"])
    assert list(risks) == ["undeliverable_share"]  # 1 of 6 is more than 5 %
    assert risks["undeliverable_share"]["severity"] == "high"
    assert [s["key"] for s in plan["suggestions"]] == ["test_send"]
    assert plan["advice"]["source"] == "none"
    assert plan["advice"]["text"] is None


async def test_blocking_checks_skip_the_preview(
    client: httpx.AsyncClient, session: AsyncSession, frozen_clock: Clock
) -> None:
    frozen_clock.freeze(MONDAY_0830_IST - timedelta(hours=1))
    ctx = await setup_campaign(client, session)
    mailbox: Mailbox = ctx["mailbox"]
    mailbox.status = MailboxStatus.revoked
    mailbox.status_reason = "token revoked"
    await session.flush()

    plan = await plan_of(client, ctx["campaign"]["id"])

    assert plan["ready"] is False
    checks = by_key(plan["checks"])
    assert checks["mailbox_health"]["status"] == "fail"
    assert "revoked: token revoked" in checks["mailbox_health"]["message"]
    assert "audience" not in checks
    assert "credit_balance" not in checks
    assert plan["schedule"] is None
    assert plan["audience"]["to_send"] is None
    assert plan["cost"] == {"credit_cost": None, "credit_balance": 20, "shortfall": 0}


async def test_the_plan_hands_back_its_preview_with_as_many_emails_as_asked(
    client: httpx.AsyncClient, session: AsyncSession, frozen_clock: Clock
) -> None:
    frozen_clock.freeze(MONDAY_0830_IST - timedelta(hours=1))
    ctx = await setup_campaign(client, session)
    campaign = await session.get(Campaign, uuid.UUID(ctx["campaign"]["id"]))
    assert campaign is not None

    plan, preview = await outreach_plan_with_preview(
        session, user=ctx["user"], campaign=campaign, preview_limit=2
    )

    assert preview is not None
    assert [e.to for e in preview.emails] == ["ravi@acme.com", "meera@globex.com"]
    assert plan.schedule == preview.schedule  # one planner run for both
    assert plan.audience.to_send == preview.to_send == 3
    ctx["mailbox"].status = MailboxStatus.revoked
    await session.flush()
    blocked, nothing = await outreach_plan_with_preview(
        session, user=ctx["user"], campaign=campaign, preview_limit=2
    )
    assert nothing is None
    assert blocked.ready is False


async def test_a_scheduled_campaign_is_not_ready(
    client: httpx.AsyncClient, session: AsyncSession, frozen_clock: Clock
) -> None:
    frozen_clock.freeze(MONDAY_0830_IST - timedelta(hours=1))
    ctx = await setup_campaign(client, session)
    campaign = await session.get(Campaign, uuid.UUID(ctx["campaign"]["id"]))
    assert campaign is not None
    campaign.status = CampaignStatus.scheduled
    await session.flush()

    plan = await plan_of(client, ctx["campaign"]["id"])

    assert plan["ready"] is False
    assert by_key(plan["checks"])["campaign_state"]["status"] == "fail"
    assert plan["campaign_status"] == "scheduled"


async def test_short_credits_a_tight_cap_and_plain_content(
    client: httpx.AsyncClient, session: AsyncSession, frozen_clock: Clock
) -> None:
    frozen_clock.freeze(MONDAY_0830_IST - timedelta(hours=1))
    ctx = await setup_campaign(client, session, daily_cap=1)
    campaign = await session.get(Campaign, uuid.UUID(ctx["campaign"]["id"]))
    assert campaign is not None
    template = await client.post(
        "/v1/templates",
        json={
            "name": "Plain",
            "subject": "A question about open roles on your data engineering team this quarter",
            "body_text": "Hello, " + "I would like to hear about your open data roles. " * 20,
        },
    )
    assert template.status_code == 201, template.text
    campaign.template_id = uuid.UUID(template.json()["id"])
    user_id = ctx["user"].id
    await credit_service.apply_ledger_entry(
        session, user_id=user_id, delta=-19, reason="admin_deduct", ref=None, idempotency_key="x"
    )
    await session.flush()

    plan = await plan_of(client, str(campaign.id))

    checks = by_key(plan["checks"])
    assert checks["credit_balance"]["status"] == "fail"
    assert checks["credit_balance"]["message"] == "Scheduling costs 4 credits; you have 1, 3 short."
    assert plan["cost"] == {"credit_cost": 4, "credit_balance": 1, "shortfall": 3}
    assert plan["ready"] is False
    assert "cap_spillover" in by_key(plan["risks"])
    assert list(plan["schedule"]["emails_per_day"].values()) == [1, 1, 1, 1]  # a cap of 1
    assert [s["key"] for s in plan["suggestions"]] == [
        "subject_length",
        "subject_personalisation",
        "body_personalisation",
        "body_length",
        "test_send",
    ]


async def test_another_users_campaign_is_not_found(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    ctx = await setup_campaign(client, session)
    client.cookies.clear()
    from tests.conftest import sign_in

    await sign_in(client, "someone@example.com")
    response = await client.get(f"/v1/campaigns/{ctx['campaign']['id']}/outreach-plan")
    assert response.status_code == 404
    assert response.json()["code"] == "campaign_not_found"
    bad = await client.get("/v1/campaigns/not-a-uuid/outreach-plan")
    assert bad.status_code == 404  # an id that is no UUID names no resource (kit.routing)


async def test_with_a_model_the_plan_adds_labelled_advice(
    client: httpx.AsyncClient,
    session: AsyncSession,
    frozen_clock: Clock,
    llm_settings: Settings,
    fake_openai: FakeOpenAI,
) -> None:
    frozen_clock.freeze(MONDAY_0830_IST - timedelta(hours=1))
    ctx = await setup_campaign(client, session)
    fake_openai.replies.append("- Verify the list again before sending.\n- Keep it short.")

    plan = await plan_of(client, ctx["campaign"]["id"])

    assert plan["advice"]["source"] == "llm"
    assert plan["advice"]["model"] == FAKE_MODEL
    assert plan["advice"]["text"] == "- Verify the list again before sending.\n- Keep it short."
    assert "language model" in plan["advice"]["note"]
    sent = fake_openai.requests[-1]["messages"]
    facts = json.loads(sent[-1]["content"])
    assert facts["template"]["subject"] == "Hello {{ first_name | default('there') }}"
    assert facts["checks"] == plan["checks"]
    assert "ravi@acme.com" not in json.dumps(sent)  # no recipient leaves for the model

    fake_openai.failures.append(500)
    unanswered = await plan_of(client, ctx["campaign"]["id"])
    assert unanswered["advice"]["source"] == "none"
    assert "did not answer" in unanswered["advice"]["note"]
    assert unanswered["checks"] == plan["checks"]  # the computed plan does not depend on it
