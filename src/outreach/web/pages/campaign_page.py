"""One campaign: live counts and each email, what came back (replies, bounces,
auto-replies per step), one recipient's timeline, "they replied" by hand, and
pause / resume / cancel / approve."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlencode

from fastapi import Request, Response
from sqlalchemy import select

from outreach.campaign import tracking
from outreach.campaign import views as campaign_views
from outreach.campaign.schemas import EmailCounts, MarkRepliedIn, ScheduledEmailOut
from outreach.campaign.service import campaign_service
from outreach.kit.db import SessionDep
from outreach.models import Campaign, User
from outreach.models.campaign import ScheduledEmail
from outreach.web.auth import FormUser, PageForm, PageUser
from outreach.web.pages.common import page_router, viewer
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
ACTIVE = ("scheduled", "sending")


def preparing(counts: EmailCounts) -> tuple[int, int] | None:
    """(prepared, to prepare) while a scheduled campaign's emails are being prepared;
    follow-ups still waiting for their previous step are not counted."""
    total = counts.total - counts.waiting
    if not counts.pending or not total:
        return None
    return total - counts.pending, total


async def _campaign_context(session: SessionDep, user: User, campaign: Campaign) -> dict[str, Any]:
    emails = (
        await session.scalars(
            select(ScheduledEmail)
            .where(ScheduledEmail.campaign_id == campaign.id)
            .order_by(ScheduledEmail.step, ScheduledEmail.due_at, ScheduledEmail.id)
            .limit(EMAILS_SHOWN)
        )
    ).all()
    out = await campaign_views.campaign_out(session, campaign)
    return {
        "viewer": viewer(user),
        "campaign": out,
        "stats": await campaign_views.stats(session, campaign=campaign),
        "emails": [ScheduledEmailOut.model_validate(e, from_attributes=True) for e in emails],
        "steps_of": {e.id: e.step for e in emails},
        "more_emails": out.counts.total > EMAILS_SHOWN,
        "preparing": preparing(out.counts),
        "active": ACTIVE,
    }


@router.get("/campaigns/{campaign_id}")
async def campaign_page(
    request: Request, campaign_id: uuid.UUID, user: PageUser, session: SessionDep
) -> Response:
    campaign = await campaign_service.get(session, user=user, campaign_id=campaign_id)
    return render(request, "campaign.html", await _campaign_context(session, user, campaign))


async def _timeline_context(
    session: SessionDep, user: User, campaign: Campaign, email: str
) -> dict[str, Any]:
    timeline = await tracking.timeline(session, campaign=campaign, address=email)
    return {
        "viewer": viewer(user),
        # Its name and id are all the page shows: plain values, not the counted view.
        "campaign": {"id": str(campaign.id), "name": campaign.name},
        "timeline": timeline,
        "replied": any(entry.what == "replied" for entry in timeline.entries),
    }


@router.get("/campaigns/{campaign_id}/timeline")
async def timeline_page(
    request: Request,
    campaign_id: uuid.UUID,
    email: str,
    user: PageUser,
    session: SessionDep,
    marked: int | None = None,
    cancelled: int = 0,
) -> Response:
    """One recipient: each email of the campaign to them and what came back, in order."""
    campaign = await campaign_service.get(session, user=user, campaign_id=campaign_id)
    context = await _timeline_context(session, user, campaign, email)
    if marked is not None:
        context["notice"] = (
            f"Marked as replied; {cancelled} follow-up(s) cancelled and refunded."
            if marked
            else "Already marked as replied; nothing changed."
        )
    return render(request, "timeline.html", context)


@router.post("/campaigns/{campaign_id}/replied")
async def mark_replied(
    request: Request, campaign_id: uuid.UUID, user: FormUser, session: SessionDep, form: PageForm
) -> Response:
    """The same call as ``POST /v1/campaigns/{id}/replied``; refused, the form it came
    from (the campaign page, or the recipient's timeline) is shown again."""
    campaign = await campaign_service.get(session, user=user, campaign_id=campaign_id)
    email = str(form.get("email") or "")
    if form.get("back") == "timeline":
        template, context = "timeline.html", await _timeline_context(session, user, campaign, email)
    else:
        template, context = "campaign.html", await _campaign_context(session, user, campaign)
    async with refused_form(template, {**context, "values": typed_values(form)}):
        body = parse_form(MarkRepliedIn, {"email": email.strip()})
        marked = await tracking.mark_replied(session, campaign=campaign, address=body.email)
    query = urlencode({"email": marked.email, "marked": int(marked.recorded)})
    query += f"&cancelled={marked.cancelled_followups}"
    return see_other(f"/campaigns/{campaign.id}/timeline?{query}")


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
