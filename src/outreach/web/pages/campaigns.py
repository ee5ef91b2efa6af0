"""Campaigns: the wizard (mailbox → list → template → window and caps → preview →
schedule) and the campaign page (live counts, each email, pause/resume/cancel/approve)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import Request, Response
from sqlalchemy import select

from outreach.campaign import views as campaign_views
from outreach.campaign.schemas import CampaignCreate, ScheduledEmailOut
from outreach.campaign.service import campaign_service
from outreach.kit.db import SessionDep
from outreach.mailbox.schemas import MailboxOut
from outreach.mailbox.service import mailbox_service
from outreach.models import Campaign, User
from outreach.models.campaign import ScheduledEmail
from outreach.recipient.endpoints.common import list_out
from outreach.recipient.lists import list_service
from outreach.template.endpoints import template_out
from outreach.template.service import template_service
from outreach.web.auth import FormUser, PageForm, PageUser
from outreach.web.pages.account import credits_context
from outreach.web.pages.common import first_page, page_router, viewer
from outreach.web.rendering import (
    FormInvalid,
    parse_form,
    refused_form,
    render,
    see_other,
    typed_values,
)

router = page_router()
EMAILS_SHOWN = 200
WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
ACTIVE = ("scheduled", "sending")


async def _wizard_context(request: Request, session: SessionDep, user: User) -> dict[str, Any]:
    page = first_page(request, 50)
    mailboxes, _ = await mailbox_service.list_mailboxes(session, user=user, pagination=page)
    lists, _ = await list_service.list_lists(session, user_id=user.id, pagination=page)
    rows, _ = await template_service.list(session, user=user, pagination=page)
    return {
        "viewer": viewer(user),
        "mailboxes": [MailboxOut.model_validate(m) for m in mailboxes],
        "lists": [list_out(item) for item in lists if item.status.value == "ready"],
        "templates": [template_out(t, v) for t, v in rows],
        "weekdays": WEEKDAYS,
    }


@router.get("/campaigns")
async def campaigns_page(request: Request, user: PageUser, session: SessionDep) -> Response:
    campaigns, _ = await campaign_service.list_campaigns(
        session, user=user, pagination=first_page(request, 50)
    )
    context = {
        "viewer": viewer(user),
        "campaigns": await campaign_views.campaigns_out(session, campaigns),
    }
    return render(request, "campaigns.html", context)


@router.get("/campaigns/new")
async def new_campaign(
    request: Request, user: PageUser, session: SessionDep, list_id: uuid.UUID | None = None
) -> Response:
    context = await _wizard_context(request, session, user)
    values: dict[str, Any] = {"list_id": str(list_id or ""), "window_start": "09:00"}
    values |= {"window_end": "17:00", "min_gap_minutes": "2", "company_cap": "2"}
    return render(
        request, "campaign_new.html", {**context, "values": values, "days": [0, 1, 2, 3, 4]}
    )


@router.post("/campaigns")
async def create_campaign(
    request: Request, user: FormUser, session: SessionDep, form: PageForm
) -> Response:
    context = await _wizard_context(request, session, user)
    days = [int(d) for d in form.getlist("window_days") if isinstance(d, str) and d.isdigit()]
    context |= {"values": typed_values(form), "days": days}
    async with refused_form("campaign_new.html", context):
        data = parse_form(CampaignCreate, _campaign_fields(form, days))
        campaign = await campaign_service.create(session, user=user, data=data)
    return see_other(f"/campaigns/{campaign.id}/review")


def _number(form: Any, name: str) -> int | None:
    value = str(form.get(name) or "").strip()
    if not value:
        return None
    if not value.isdigit():
        raise FormInvalid(f"{name.replace('_', ' ')}: give a whole number")
    return int(value)


def _campaign_fields(form: Any, days: list[int]) -> dict[str, Any]:
    """The wizard's answers in the API's request shape (minutes shown, seconds sent)."""
    gap = _number(form, "min_gap_minutes")
    fields: dict[str, Any] = {
        "name": form.get("name"),
        "mailbox_id": form.get("mailbox_id") or None,
        "list_id": form.get("list_id") or None,
        "template_id": form.get("template_id") or None,
        "window_days": days,
        "window_start": form.get("window_start") or "09:00",
        "window_end": form.get("window_end") or "17:00",
        "daily_cap": _number(form, "daily_cap"),
        "company_cap": _number(form, "company_cap"),
        "min_gap_seconds": 120 if gap is None else gap * 60,
        "jitter_seconds": 0 if gap == 0 else 60,
        "attach_resume": form.get("attach_resume") == "on",
        "review_mode": form.get("review_mode") == "on",
    }
    return {k: v for k, v in fields.items() if v is not None}


async def _review_context(
    request: Request, session: SessionDep, user: User, campaign: Campaign
) -> dict[str, Any]:
    return {
        "viewer": viewer(user),
        "campaign": await campaign_views.campaign_out(session, campaign),
        "preview": await campaign_views.preview(session, user=user, campaign=campaign, limit=3),
    }


@router.get("/campaigns/{campaign_id}/review")
async def review_campaign(
    request: Request, campaign_id: uuid.UUID, user: PageUser, session: SessionDep
) -> Response:
    campaign = await campaign_service.get(session, user=user, campaign_id=campaign_id)
    return render(
        request, "campaign_review.html", await _review_context(request, session, user, campaign)
    )


@router.post("/campaigns/{campaign_id}/schedule")
async def schedule_campaign(
    request: Request, campaign_id: uuid.UUID, user: FormUser, session: SessionDep
) -> Response:
    campaign = await campaign_service.get(session, user=user, campaign_id=campaign_id)
    context = await _review_context(request, session, user, campaign)
    context |= await credits_context(request, session, user)  # the packs, if credits are short
    async with refused_form("campaign_review.html", context):
        await campaign_service.schedule(session, user=user, campaign=campaign)
    return see_other(f"/campaigns/{campaign.id}")


@router.get("/campaigns/{campaign_id}")
async def campaign_page(
    request: Request, campaign_id: uuid.UUID, user: PageUser, session: SessionDep
) -> Response:
    campaign = await campaign_service.get(session, user=user, campaign_id=campaign_id)
    emails = await session.scalars(
        select(ScheduledEmail)
        .where(ScheduledEmail.campaign_id == campaign.id)
        .order_by(ScheduledEmail.due_at, ScheduledEmail.id)
        .limit(EMAILS_SHOWN)
    )
    context = {
        "viewer": viewer(user),
        "campaign": await campaign_views.campaign_out(session, campaign),
        "emails": [ScheduledEmailOut.model_validate(e, from_attributes=True) for e in emails],
        "active": ACTIVE,
    }
    return render(request, "campaign.html", context)


@router.post("/campaigns/{campaign_id}/{action}")
async def control_campaign(
    request: Request, campaign_id: uuid.UUID, action: str, user: FormUser, session: SessionDep
) -> Response:
    """Pause, resume, cancel or approve: the same service calls as the API's."""
    campaign = await campaign_service.get(session, user=user, campaign_id=campaign_id)
    if action == "pause":
        await campaign_service.pause(session, campaign=campaign, reason="paused by you")
    elif action == "resume":
        await campaign_service.resume(session, user=user, campaign=campaign)
    elif action == "cancel":
        await campaign_service.cancel(session, campaign=campaign)
    elif action == "approve":
        await campaign_service.approve(session, campaign=campaign, email_ids=None)
    else:
        raise FormInvalid(f"there is no {action!r} for a campaign")
    return see_other(f"/campaigns/{campaign.id}")
