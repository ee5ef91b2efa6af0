"""Campaigns: the list, the wizard (mailbox → list → template → window and caps →
follow-ups) and its review step (the outreach plan: checks, risks, cost, projected
schedule, who is skipped, the first emails), then scheduling."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlencode

from fastapi import Request, Response

from outreach.campaign import followups
from outreach.campaign import views as campaign_views
from outreach.campaign.schemas import CampaignCreate
from outreach.campaign.service import campaign_service
from outreach.kit.db import SessionDep
from outreach.mailbox.service import mailbox_service
from outreach.models import Campaign, Mailbox, MailboxProvider, User
from outreach.recipient.endpoints.common import list_out
from outreach.recipient.lists import list_service
from outreach.template.endpoints import template_out
from outreach.template.service import template_service
from outreach.web.auth import FormUser, PageForm, PageUser
from outreach.web.idempotency import answered, claim_form_key
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
from outreach.workflow.outreach_plan import outreach_plan_with_preview

router = page_router()
WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
FOLLOWUPS = (1, 2, 3)  # the form's follow-up rows (the API allows up to three)
DEFAULT_DELAY = 4  # business days, the API's default
PREVIEWED = 3  # emails the review page shows as sent


def mailbox_choice(mailbox: Mailbox) -> str:
    """The mailbox as the wizard offers it: its kind and whether it can see replies."""
    if mailbox.provider == MailboxProvider.gmail:
        kind = "Gmail" if mailbox.mode and mailbox.mode.value == "full" else "Gmail, send-only"
    else:
        kind = {"smtp": "SMTP", "outbox": "development outbox"}[mailbox.provider.value]
    sees = followups.reply_detection(mailbox) == "available"
    return f"{mailbox.address} ({kind}; {'sees replies' if sees else 'cannot see replies'})"


async def _wizard_context(request: Request, session: SessionDep, user: User) -> dict[str, Any]:
    page = first_page(request, 50)
    mailboxes, _ = await mailbox_service.list_mailboxes(session, user=user, pagination=page)
    lists, _ = await list_service.list_lists(session, user_id=user.id, pagination=page)
    rows, _ = await template_service.list(session, user=user, pagination=page)
    return {
        "viewer": viewer(user),
        "mailboxes": [(str(m.id), mailbox_choice(m)) for m in mailboxes],
        "lists": [list_out(item) for item in lists if item.status.value == "ready"],
        "templates": [template_out(t, v) for t, v in rows],
        "weekdays": WEEKDAYS,
        "followup_rows": FOLLOWUPS,
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
    values |= {f"step{n}_delay": str(DEFAULT_DELAY) for n in FOLLOWUPS}
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
        fields, rows = _campaign_fields(form, days)
        data = parse_form(CampaignCreate, fields, name=lambda loc: _field_name(loc, rows))
        campaign = await campaign_service.create(session, user=user, data=data)
        # The API lets such a draft exist and refuses it at preview; the wizard asks now,
        # so the refusal comes with the form as typed (the draft is rolled back).
        mailbox = await mailbox_service.get_mailbox(
            session, user=user, mailbox_id=campaign.mailbox_id
        )
        followups.check_reply_detection(campaign, mailbox, data.steps)
    return see_other(f"/campaigns/{campaign.id}/review")


def _number(form: Any, name: str, label: str | None = None) -> int | None:
    value = str(form.get(name) or "").strip()
    if not value:
        return None
    if not value.isdigit():
        raise FormInvalid(f"{label or name.replace('_', ' ')}: give a whole number")
    return int(value)


def _steps(form: Any) -> tuple[list[dict[str, Any]], list[int]]:
    """The follow-ups chosen (a row without a template is no follow-up), in the API's
    shape, and which form row each came from."""
    steps, rows = [], []
    for n in FOLLOWUPS:
        template_id = form.get(f"step{n}_template_id")
        if not template_id:
            continue
        delay = _number(form, f"step{n}_delay", f"follow-up {n}, business days to wait")
        steps.append(
            {
                "template_id": template_id,
                "delay_business_days": DEFAULT_DELAY if delay is None else delay,
                "use_own_subject": form.get(f"step{n}_own_subject") == "on",
            }
        )
        rows.append(n)
    return steps, rows


def _field_name(loc: tuple[str | int, ...], rows: list[int]) -> str:
    """A refused field in the wizard's words ("follow-up 2, delay business days")."""
    if len(loc) >= 2 and loc[0] == "steps" and isinstance(loc[1], int) and loc[1] < len(rows):
        rest = " ".join(str(part).replace("_", " ") for part in loc[2:])
        return f"follow-up {rows[loc[1]]}" + (f", {rest}" if rest else "")
    return ".".join(map(str, loc)).replace("_", " ")


def _campaign_fields(form: Any, days: list[int]) -> tuple[dict[str, Any], list[int]]:
    """The wizard's answers in the API's request shape (minutes shown, seconds sent)."""
    gap = _number(form, "min_gap_minutes")
    steps, rows = _steps(form)
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
        "steps": steps,
        "followups_without_reply_detection": form.get("followups_without_reply_detection") == "on",
        "stop_on_auto_reply": form.get("stop_on_auto_reply") == "on",
    }
    return {k: v for k, v in fields.items() if v is not None}, rows


async def _review_context(session: SessionDep, user: User, campaign: Campaign) -> dict[str, Any]:
    """The outreach plan (checks, risks, cost, projected schedule) and the preview it
    was built on, from one run of the planner."""
    plan, preview = await outreach_plan_with_preview(
        session, user=user, campaign=campaign, preview_limit=PREVIEWED
    )
    out = await campaign_views.campaign_out(session, campaign)
    step_names = {}
    for step in out.steps:
        template = await template_service.get(session, user=user, template_id=step.template_id)
        step_names[step.position] = template.name
    return {
        "viewer": viewer(user),
        "campaign": out,
        "plan": plan,
        "preview": preview,
        "step_names": step_names,
        "run_key": f"web-schedule:{uuid.uuid4()}",
    }


@router.get("/campaigns/{campaign_id}/review")
async def review_campaign(
    request: Request,
    campaign_id: uuid.UUID,
    user: PageUser,
    session: SessionDep,
    tested: str | None = None,
) -> Response:
    campaign = await campaign_service.get(session, user=user, campaign_id=campaign_id)
    context = await _review_context(session, user, campaign)
    if tested:
        context["notice"] = f"A test email went to {tested}: read it before you schedule."
    if context["plan"].cost.shortfall:
        context |= await credits_context(request, session, user)  # the packs, beside it
    return render(request, "campaign_review.html", context)


@router.post("/campaigns/{campaign_id}/test-send")
async def test_send(
    request: Request, campaign_id: uuid.UUID, user: FormUser, session: SessionDep
) -> Response:
    """The first recipient's email, sent to the mailbox's own address (free), as
    ``POST /v1/campaigns/{id}/test-send``."""
    campaign = await campaign_service.get(session, user=user, campaign_id=campaign_id)
    context = await _review_context(session, user, campaign)
    async with refused_form("campaign_review.html", context):
        sent = await campaign_views.test_send(session, user=user, campaign=campaign)
    return see_other(f"/campaigns/{campaign.id}/review?{urlencode({'tested': sent.to})}")


@router.post("/campaigns/{campaign_id}/schedule")
async def schedule_campaign(
    request: Request, campaign_id: uuid.UUID, user: FormUser, session: SessionDep, form: PageForm
) -> Response:
    """Charge and schedule, once per form: a double click lands on the campaign page
    instead of a refusal for a campaign no longer a draft."""
    campaign = await campaign_service.get(session, user=user, campaign_id=campaign_id)
    context = await _review_context(session, user, campaign)
    context |= await credits_context(request, session, user)  # the packs, if credits are short
    async with refused_form("campaign_review.html", context):
        claimed = await claim_form_key(request, session, user, form)
        await campaign_service.schedule(session, user=user, campaign=campaign)
    return await answered(claimed, see_other(f"/campaigns/{campaign.id}"))
