"""Suppressions: the people and domains never to be emailed; add one, remove one."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import Request, Response

from outreach.kit.db import SessionDep
from outreach.models import User
from outreach.recipient.schemas import SuppressionCreate, SuppressionOut
from outreach.recipient.suppression import suppression_service
from outreach.web.auth import FormUser, PageForm, PageUser
from outreach.web.pages.common import first_page, page_router, viewer
from outreach.web.rendering import parse_form, refused_form, render, see_other, typed_values

router = page_router()


async def _context(request: Request, session: SessionDep, user: User) -> dict[str, Any]:
    rows, _ = await suppression_service.list_suppressions(
        session, user_id=user.id, pagination=first_page(request, 100), search=None, reason=None
    )
    return {
        "viewer": viewer(user),
        "suppressions": [SuppressionOut.model_validate(r) for r in rows],
    }


@router.get("/suppressions")
async def suppressions_page(request: Request, user: PageUser, session: SessionDep) -> Response:
    return render(request, "suppressions.html", await _context(request, session, user))


@router.post("/suppressions")
async def add_suppression(
    request: Request, user: FormUser, session: SessionDep, form: PageForm
) -> Response:
    context = {**await _context(request, session, user), "values": typed_values(form)}
    async with refused_form("suppressions.html", context):
        body = parse_form(SuppressionCreate, {"value": form.get("value"), "reason": "manual"})
        await suppression_service.add(
            session, user_id=user.id, value=body.value, reason=body.reason, source="web"
        )
    return see_other("/suppressions")


@router.post("/suppressions/{suppression_id}/remove")
async def remove_suppression(
    suppression_id: uuid.UUID, user: FormUser, session: SessionDep
) -> Response:
    await suppression_service.remove(session, user_id=user.id, suppression_id=suppression_id)
    return see_other("/suppressions")
