"""Settings: the referral link, the data export, account deletion with confirmation."""

from __future__ import annotations

import json

from fastapi import Request, Response

from outreach.account import endpoints as account_api
from outreach.account.schemas import DeletionConfirmation
from outreach.kit.db import SessionDep
from outreach.referral import endpoints as referral_api
from outreach.web.auth import FormUser, PageForm, PageUser
from outreach.web.pages.common import page_router, viewer
from outreach.web.rendering import refused_form, render, see_other

router = page_router()


@router.get("/settings")
async def settings_page(request: Request, user: PageUser, session: SessionDep) -> Response:
    referral = await referral_api.get_my_referral(request, user, session)
    return render(request, "settings.html", {"viewer": viewer(user), "referral": referral})


@router.post("/settings/delete")
async def delete_account(
    request: Request, user: FormUser, session: SessionDep, form: PageForm
) -> Response:
    """First the API's confirmation step (what would go), then the deletion itself."""
    context = {"viewer": viewer(user), "referral": None}
    confirm = form.get("confirm")
    async with refused_form("settings.html", context):
        answer = await account_api.delete_account(
            request, user, session, confirm=confirm if isinstance(confirm, str) else None
        )
    if answer.status_code == 202:
        pending = DeletionConfirmation.model_validate(json.loads(bytes(answer.body)))
        return render(request, "settings.html", {**context, "pending": pending})
    redirect = see_other("/sign-in?deleted=1")
    redirect.raw_headers.extend(h for h in answer.raw_headers if h[0] == b"set-cookie")
    return redirect
