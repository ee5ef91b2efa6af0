"""GET /v1/onboarding/status: each step read from its domain, the next best action."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.models import (
    Campaign,
    Mailbox,
    MailboxProvider,
    MailboxStatus,
    Resume,
    ResumeAnalysis,
    User,
)
from outreach.models.campaign import CampaignStatus
from outreach.models.recipient_list import ListStatus
from tests.campaign.conftest import make_list, make_outbox_mailbox, make_template
from tests.conftest import sign_in

STEP_KEYS = [
    "signed_in",
    "mailbox_connected",
    "resume_analysed",
    "list_verified",
    "template_created",
    "campaign_scheduled",
]


async def status(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/v1/onboarding/status")
    assert response.status_code == 200, response.text
    return response.json()


def done(body: dict[str, Any]) -> dict[str, bool]:
    return {step["key"]: step["done"] for step in body["steps"]}


async def signed_in_user(client: httpx.AsyncClient, session: AsyncSession) -> User:
    me = await sign_in(client, "asha@example.com", "Asha Rao")
    user = await session.get(User, uuid.UUID(me["id"]))
    assert user is not None
    return user


async def add_resume(session: AsyncSession, user: User, *, analysed: bool) -> Resume:
    resume = Resume(
        user_id=user.id,
        file_key=f"resumes/{uuid.uuid4()}",
        file_name="asha.pdf",
        kind="pdf",
        size_bytes=1000,
        sha256="0" * 64,
        page_count=1,
        text="Asha Rao, data analyst",
        sections={},
        contact={},
        skills=["sql"],
        years_experience=3.0,
        layout={},
    )
    session.add(resume)
    await session.flush()
    if analysed:
        session.add(
            ResumeAnalysis(
                user_id=user.id,
                resume_id=resume.id,
                rubric_version="1",
                score=78,
                target_role=None,
                job_description_sha256=None,
                free=True,
                credits_charged=0,
                writer="built-in",
                report={},
            )
        )
        await session.flush()
    return resume


async def test_a_new_user_is_told_to_connect_gmail(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    assert (await client.get("/v1/onboarding/status")).status_code == 401
    await signed_in_user(client, session)

    body = await status(client)

    assert [step["key"] for step in body["steps"]] == STEP_KEYS
    assert done(body) == {key: key == "signed_in" for key in STEP_KEYS}
    assert (body["completed"], body["total"]) == (1, 6)
    assert body["next_action"]["action"] == "connect_gmail"
    assert body["next_action"]["request"] == "GET /v1/gmail/connect"
    assert body["next_action"]["reason"]


async def test_each_step_moves_the_next_action_on(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    user = await signed_in_user(client, session)

    mailbox = await make_outbox_mailbox(session, user)
    assert (await status(client))["next_action"]["action"] == "upload_resume"

    resume = await add_resume(session, user, analysed=False)
    action = (await status(client))["next_action"]
    assert (action["action"], action["resource_id"]) == ("analyse_resume", str(resume.id))

    await add_resume(session, user, analysed=True)
    body = await status(client)
    assert body["next_action"]["action"] == "import_list"
    assert (
        "scored 78 / 100"
        in next(s for s in body["steps"] if s["key"] == "resume_analysed")["detail"]
    )

    importing = await make_list(session, user, [], status=ListStatus.processing)
    action = (await status(client))["next_action"]
    assert (action["action"], action["resource_id"]) == ("wait_for_import", str(importing.id))

    rows = [{"email": f"p{i}@acme.com", "verification_status": "unverified"} for i in range(3)]
    targets = await make_list(session, user, rows)
    action = (await status(client))["next_action"]
    assert (action["action"], action["resource_id"]) == ("verify_list", str(targets.id))
    assert "3 credits" in action["reason"]

    for recipient_list in (importing, targets):
        await session.delete(recipient_list)
    verified = await make_list(session, user, [{"email": "ravi@acme.com", "first_name": "R"}])
    assert (await status(client))["next_action"]["action"] == "create_template"

    template_id = await make_template(session, user)
    assert (await status(client))["next_action"]["action"] == "create_campaign"

    draft = Campaign(
        user_id=user.id,
        name="Data roles",
        mailbox_id=mailbox.id,
        template_id=template_id,
        list_id=verified.id,
        start_at=user.created_at,
        status=CampaignStatus.draft,
    )
    session.add(draft)
    await session.flush()
    action = (await status(client))["next_action"]
    assert action["action"] == "schedule_campaign"
    assert action["request"] == f"GET /v1/campaigns/{draft.id}/outreach-plan"

    draft.status = CampaignStatus.scheduled
    await session.flush()
    body = await status(client)
    assert (body["completed"], body["next_action"]) == (6, None)
    me = (await client.get("/v1/auth/me")).json()
    assert me["onboarding"]["flags"] == dict.fromkeys(STEP_KEYS[1:], True)


async def test_verifying_a_list_without_credits_asks_for_credits(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    user = await signed_in_user(client, session)  # 20 signup credits
    rows = [{"email": f"p{i}@acme.com", "verification_status": "unverified"} for i in range(25)]
    await make_list(session, user, rows)

    body = await status(client)

    list_step = next(s for s in body["steps"] if s["key"] == "list_verified")
    assert list_step["detail"] == "'Targets': 25 of 25 addresses unchecked."
    assert body["next_action"]["action"] == "connect_gmail"  # the earlier step comes first
    await make_outbox_mailbox(session, user)
    await add_resume(session, user, analysed=True)
    action = (await status(client))["next_action"]
    assert action["action"] == "buy_credits"
    assert action["reason"] == "Verifying 'Targets' costs 25 credits and you have 20."


async def test_a_broken_mailbox_comes_first(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    user = await signed_in_user(client, session)
    await make_outbox_mailbox(session, user)
    broken = Mailbox(
        user_id=user.id,
        provider=MailboxProvider.gmail,
        address="asha@gmail.com",
        status=MailboxStatus.revoked,
        status_reason="access was revoked in the Google account",
        granted_scopes=[],
    )
    session.add(broken)
    await session.flush()

    body = await status(client)

    assert done(body)["mailbox_connected"] is False
    action = body["next_action"]
    assert action["action"] == "reconnect_mailbox"
    assert action["resource_id"] == str(broken.id)
    assert action["request"] == "GET /v1/gmail/connect"
    me = (await client.get("/v1/auth/me")).json()
    assert me["onboarding"]["flags"]["mailbox_connected"] is True  # the outbox still sends
