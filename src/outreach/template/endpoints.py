"""/v1/templates: write, version, render and (AI-)generate email templates."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, Response

from outreach.auth.dependencies import CurrentUser, IdempotencyOptional
from outreach.kit.db import SessionDep
from outreach.kit.errors import problem_responses
from outreach.kit.idempotency import HEADER, IdempotentRoute
from outreach.kit.pagination import Page, PaginationDep
from outreach.models import Template, TemplateVersion
from outreach.template.generation import GenerateRequest, charge_key, template_generator
from outreach.template.profile import sender_profile
from outreach.template.sandbox import FILTERS
from outreach.template.schemas import (
    GeneratedOut,
    RenderedOut,
    RenderRequest,
    TemplateCreate,
    TemplateOut,
    TemplateUpdate,
    VariableInfo,
    VariablesOut,
)
from outreach.template.service import check_content, template_service
from outreach.template.variables import available_variables

router = APIRouter(prefix="/v1/templates", tags=["templates"], route_class=IdempotentRoute)
TemplateID = Annotated[uuid.UUID, Path(description="The template's id")]


def template_out(template: Template, version: TemplateVersion) -> TemplateOut:
    return TemplateOut(
        id=template.id,
        name=template.name,
        version=version.version,
        subject=version.subject,
        body_text=version.body_text,
        body_html=version.body_html,
        variables=version.variables,
        required_variables=version.required_variables,
        source=template.source,
        created_at=template.created_at,
        updated_at=template.updated_at,
    )


@router.get("", summary="Your templates, newest first", responses=problem_responses(400, 401, 422))
async def list_templates(
    user: CurrentUser, session: SessionDep, pagination: PaginationDep
) -> Page[TemplateOut]:
    rows, cursor = await template_service.list(session, user=user, pagination=pagination)
    return Page(items=[template_out(t, v) for t, v in rows], next_cursor=cursor)


@router.post(
    "",
    status_code=201,
    summary="Save a template (checked against the template language's allowlist)",
    responses=problem_responses(401, 403, 422),
)
async def create_template(
    body: TemplateCreate, user: CurrentUser, session: SessionDep
) -> TemplateOut:
    template, version = await template_service.create(session, user=user, data=body)
    return template_out(template, version)


@router.post(
    "/generate",
    summary="Write a draft with AI (or the built-in writer); charged per pricing",
    dependencies=[IdempotencyOptional],
    responses=problem_responses(400, 401, 402, 403, 404, 422, 503),
)
async def generate_template(
    body: GenerateRequest, request: Request, user: CurrentUser, session: SessionDep
) -> GeneratedOut:
    draft, writer, strengths, charged = await template_generator.generate(
        session, user=user, request=body, charge_key=charge_key(user, request.headers.get(HEADER))
    )
    shape = check_content(draft.subject, draft.body_text, None)
    saved = None
    if body.save_as:
        template, version = await template_service.create(
            session,
            user=user,
            data=TemplateCreate(
                name=body.save_as, subject=draft.subject, body_text=draft.body_text
            ),
            source="built-in" if writer.startswith("built-in") else writer,
        )
        saved = template_out(template, version)
    return GeneratedOut(
        subject=draft.subject,
        body_text=draft.body_text,
        writer=writer,
        variables=shape.variables,
        required_variables=shape.required,
        skills_used=strengths.skills,
        resume_id=strengths.resume_id,
        charged_credits=charged,
        template=saved,
    )


@router.get(
    "/variables",
    summary="Variables a template can use (for a list: its columns too) and the filters",
    responses=problem_responses(401, 404, 422),
)
async def list_variables(
    user: CurrentUser,
    session: SessionDep,
    list_id: Annotated[uuid.UUID | None, Query(description="A recipient list of yours")] = None,
) -> VariablesOut:
    variables = await available_variables(session, user=user, list_id=list_id)
    return VariablesOut(variables=[VariableInfo(**v) for v in variables], filters=sorted(FILTERS))


@router.get("/{template_id}", summary="One template", responses=problem_responses(401, 404, 422))
async def get_template(
    template_id: TemplateID, user: CurrentUser, session: SessionDep
) -> TemplateOut:
    template = await template_service.get(session, user=user, template_id=template_id)
    return template_out(template, await template_service.get_version(session, template=template))


@router.patch(
    "/{template_id}",
    summary="Edit a template (content changes make a new version)",
    responses=problem_responses(401, 403, 404, 422),
)
async def update_template(
    template_id: TemplateID, body: TemplateUpdate, user: CurrentUser, session: SessionDep
) -> TemplateOut:
    template = await template_service.get(session, user=user, template_id=template_id)
    version = await template_service.update(session, template=template, data=body)
    return template_out(template, version)


@router.delete(
    "/{template_id}",
    status_code=204,
    summary="Delete a template",
    responses=problem_responses(401, 403, 404, 422),
)
async def delete_template(
    template_id: TemplateID, user: CurrentUser, session: SessionDep
) -> Response:
    template = await template_service.get(session, user=user, template_id=template_id)
    await template_service.delete(session, template=template)
    return Response(status_code=204)


@router.post(
    "/{template_id}/render",
    summary="Render against sample data, exactly as sent (footer included)",
    responses=problem_responses(401, 403, 404, 422),
)
async def render_template(
    template_id: TemplateID, body: RenderRequest, user: CurrentUser, session: SessionDep
) -> RenderedOut:
    template = await template_service.get(session, user=user, template_id=template_id)
    version = await template_service.get_version(session, template=template)
    sender = body.sender if body.sender is not None else await sender_profile(session, user=user)
    rendered, context = template_service.sample_render(
        version, user=user, sample=body.sample, sender={k: v for k, v in sender.items() if v}
    )
    return RenderedOut(
        subject=rendered.subject, text=rendered.text, html=rendered.html, context=context
    )
