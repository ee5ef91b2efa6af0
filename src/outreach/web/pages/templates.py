"""Templates: the editor with its variable picker and a live preview against a list
row, and the AI draft (the configured model, or the built-in writer, said which)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from fastapi import Request, Response

from outreach.campaign.audience import recipient_fields
from outreach.credits.pricing import pricing_from_settings
from outreach.credits.service import credit_service
from outreach.kit.db import SessionDep
from outreach.kit.errors import AppError
from outreach.kit.idempotency import HEADER as IDEMPOTENCY_HEADER
from outreach.llm.service import llm_service
from outreach.models import User
from outreach.recipient.endpoints.common import list_out
from outreach.recipient.lists import list_service
from outreach.resume.service import ResumeNotFound, resume_service
from outreach.template import endpoints as templates_api
from outreach.template.endpoints import template_out
from outreach.template.generation import GenerateRequest
from outreach.template.profile import sender_profile
from outreach.template.schemas import TemplateCreate, TemplateUpdate
from outreach.template.service import SAMPLE_RECIPIENT, check_content, template_service
from outreach.template.variables import available_variables
from outreach.web.auth import FormUser, PageForm, PageUser, with_header
from outreach.web.idempotency import answered, claim_form_key
from outreach.web.pages.common import first_page, page_router, viewer
from outreach.web.pages.lists import secret
from outreach.web.rendering import (
    FormInvalid,
    as_uuid,
    parse_form,
    problem_of,
    refused_form,
    render,
    see_other,
    typed_values,
)

router = page_router()


@dataclass
class Draft:
    """What the editor holds now, rendered before it is saved."""

    subject: str
    body_text: str
    body_html: str | None = None


async def _editor_context(
    request: Request, session: SessionDep, user: User, list_id: uuid.UUID | None
) -> dict[str, Any]:
    lists, _ = await list_service.list_lists(
        session, user_id=user.id, pagination=first_page(request, 50)
    )
    return {
        "viewer": viewer(user),
        "lists": [list_out(item) for item in lists],
        "variables": await available_variables(session, user=user, list_id=list_id),
    }


@router.get("/templates")
async def templates_page(request: Request, user: PageUser, session: SessionDep) -> Response:
    rows, _ = await template_service.list(session, user=user, pagination=first_page(request, 50))
    context = {"viewer": viewer(user), "templates": [template_out(t, v) for t, v in rows]}
    return render(request, "templates.html", context)


@router.get("/templates/new")
async def new_template(
    request: Request, user: PageUser, session: SessionDep, list_id: uuid.UUID | None = None
) -> Response:
    context = await _editor_context(request, session, user, list_id)
    values = {"list_id": str(list_id or ""), "row": "1"}
    return render(request, "template_edit.html", {**context, "values": values})


@router.post("/templates")
async def create_template(
    request: Request, user: FormUser, session: SessionDep, form: PageForm
) -> Response:
    context = await _editor_context(request, session, user, as_uuid(form.get("list_id")))
    async with refused_form("template_edit.html", {**context, "values": typed_values(form)}):
        data = parse_form(TemplateCreate, _content(form))
        template, _ = await template_service.create(session, user=user, data=data)
    return see_other(_saved_url(template.id, form))


async def _draft_context(request: Request, session: SessionDep, user: User) -> dict[str, Any]:
    """Who writes the draft (the configured model, or the built-in writer), what it
    costs, and which resume it leans on."""
    settings = request.app.state.settings
    try:
        resume, _ = await resume_service.latest(session, user=user)
        resume_name: str | None = resume.file_name
    except ResumeNotFound:
        resume_name = None
    return {
        "viewer": viewer(user),
        "model": settings.llm_model if llm_service.configured(settings) else None,
        "price": pricing_from_settings(settings).ai_template,
        "balance": await credit_service.get_balance(session, user_id=user.id),
        "resume_name": resume_name,
        "run_key": f"web-draft:{uuid.uuid4()}",
    }


@router.get("/templates/draft")
async def draft_page(request: Request, user: PageUser, session: SessionDep) -> Response:
    context = await _draft_context(request, session, user)
    values = {"tone": "warm", "length": "short"}
    return render(request, "template_draft.html", {**context, "values": values})


@router.post("/templates/draft")
async def write_draft(
    request: Request, user: FormUser, session: SessionDep, form: PageForm
) -> Response:
    """``POST /v1/templates/generate`` with ``save_as`` (the endpoint itself; the form's
    key makes a resent form the same draft, charged once), then the editor."""
    context = await _draft_context(request, session, user)
    async with refused_form("template_draft.html", {**context, "values": typed_values(form)}):
        claimed = await claim_form_key(request, session, user, form)
        if not str(form.get("name") or "").strip():
            raise FormInvalid("template name: give the draft a name to save it under")
        fields = {
            key: form.get(key) or None
            for key in ("target_role", "tone", "length", "company", "job_description")
        }
        body = parse_form(GenerateRequest, {**fields, "save_as": str(form.get("name")).strip()})
        keyed = with_header(request, IDEMPOTENCY_HEADER, claimed.key)
        generated = await templates_api.generate_template(body, keyed, user, session)
    assert generated.template is not None  # save_as was given
    url = f"/templates/{generated.template.id}?notice=drafted&charged={generated.charged_credits}"
    return await answered(claimed, see_other(url))


@router.get("/templates/{template_id}")
async def edit_template(
    request: Request,
    template_id: uuid.UUID,
    user: PageUser,
    session: SessionDep,
    list_id: uuid.UUID | None = None,
) -> Response:
    template = await template_service.get(session, user=user, template_id=template_id)
    saved = template_out(template, await template_service.get_version(session, template=template))
    context = await _editor_context(request, session, user, list_id)
    values = {
        "name": saved.name,
        "subject": saved.subject,
        "body_text": saved.body_text,
        "list_id": str(list_id or ""),
        "row": "1",
    }
    preview = await _preview(request, session, user, values)
    return render(
        request,
        "template_edit.html",
        {**context, "template": saved, "values": values, **preview},
    )


@router.post("/templates/{template_id}")
async def update_template(
    request: Request, template_id: uuid.UUID, user: FormUser, session: SessionDep, form: PageForm
) -> Response:
    template = await template_service.get(session, user=user, template_id=template_id)
    saved = template_out(template, await template_service.get_version(session, template=template))
    context = await _editor_context(request, session, user, as_uuid(form.get("list_id")))
    context = {**context, "template": saved, "values": typed_values(form)}
    async with refused_form("template_edit.html", context):
        data = parse_form(TemplateUpdate, _content(form))
        await template_service.update(session, template=template, data=data)
    return see_other(_saved_url(template.id, form))


@router.post("/templates-preview")
async def preview_fragment(
    request: Request, user: FormUser, session: SessionDep, form: PageForm
) -> Response:
    """The live preview: the editor's unsaved text, rendered as it would be sent."""
    preview = await _preview(request, session, user, typed_values(form))
    return render(request, "template_preview.html", preview)


async def _preview(
    request: Request, session: SessionDep, user: User, values: dict[str, str]
) -> dict[str, Any]:
    """Rendered for the chosen list row (or a sample person), footer included; a problem
    with the text is shown in place of the email. Nothing is written."""
    try:
        check_content(values.get("subject", ""), values.get("body_text", ""), None)
        recipient, custom, who = await _row(request, session, user, values)
        sender = await sender_profile(session, user=user)
        rendered, _ = template_service.render_for(
            Draft(values.get("subject", ""), values.get("body_text", "")),
            sender_id=user.id,
            recipient=recipient,
            custom_fields=custom,
            sender={k: v for k, v in sender.items() if v},
        )
    except AppError as exc:
        return {"preview": None, "preview_problem": problem_of(exc)}
    return {"preview": rendered, "preview_who": who, "preview_problem": None}


async def _row(
    request: Request, session: SessionDep, user: User, values: dict[str, str]
) -> tuple[dict[str, object], dict[str, Any] | None, str]:
    list_id = as_uuid(values.get("list_id"))
    if list_id is None:
        return dict(SAMPLE_RECIPIENT), None, f"a sample person ({SAMPLE_RECIPIENT['email']})"
    found = await list_service.get_list(session, user_id=user.id, list_id=list_id)
    row = int(values["row"]) if values.get("row", "").isdigit() else 1
    items, _ = await list_service.list_items(
        session,
        recipient_list=found,
        limit=max(1, min(row, 200)),
        cursor=None,
        secret=secret(request),
    )
    if not items:
        return dict(SAMPLE_RECIPIENT), None, "a sample person (the list is empty)"
    person = items[-1]
    return recipient_fields(person), person.custom_fields, f"{person.email} (row {person.position})"


def _saved_url(template_id: uuid.UUID, form: Any) -> str:
    """The editor again, previewing the same list as before the save."""
    list_id = as_uuid(form.get("list_id"))
    return f"/templates/{template_id}?notice=saved" + (f"&list_id={list_id}" if list_id else "")


def _content(form: Any) -> dict[str, Any]:
    return {k: form.get(k) for k in ("name", "subject", "body_text") if form.get(k)}
