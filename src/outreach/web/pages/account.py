"""Sign-in and sign-out, the home page, credits and settings."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query, Request, Response
from fastapi.responses import RedirectResponse

from outreach.auth import endpoints as auth_api
from outreach.auth.dependencies import session_token
from outreach.auth.schemas import DevLogin
from outreach.campaign import views as campaign_views
from outreach.campaign.service import campaign_service
from outreach.config import Settings
from outreach.credits.pricing import pricing_from_settings
from outreach.credits.schemas import LedgerEntryOut
from outreach.credits.service import credit_service
from outreach.kit.db import SessionDep
from outreach.kit.errors import NotFound
from outreach.web.auth import FormUser, PageForm, PageUser
from outreach.web.pages.common import first_page, page_router, viewer
from outreach.web.rendering import parse_form, refused_form, render, see_other, typed_values
from outreach.workflow.onboarding import onboarding_status

router = page_router()


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _safe_next(target: str | None) -> str:
    # Only a path on this site: never an open redirect.
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return "/"


def _with_cookies(source: Response, target: RedirectResponse) -> RedirectResponse:
    """The cookies the API's own endpoint set (or deleted), on the page's redirect."""
    for name, value in source.raw_headers:
        if name == b"set-cookie":
            target.raw_headers.append((name, value))
    return target


@router.get("/sign-in")
async def sign_in_page(
    request: Request, target: Annotated[str | None, Query(alias="next")] = None
) -> Response:
    settings = _settings(request)
    return render(
        request,
        "sign_in.html",
        {
            "next": _safe_next(target),
            "dev_login": settings.dev_login_enabled,
            "google_client_id": next(iter(settings.google_client_ids), None),
        },
    )


@router.post("/sign-in/dev")
async def dev_sign_in(request: Request, session: SessionDep, form: PageForm) -> Response:
    settings = _settings(request)
    if not settings.dev_login_enabled:
        raise NotFound("the development sign-in is off on this server")
    target = _safe_next(str(form.get("next") or "/"))
    context = {"values": typed_values(form), "next": target, "dev_login": True}
    async with refused_form("sign_in.html", context):
        body = parse_form(DevLogin, {"email": form.get("email"), "name": form.get("name") or None})
        cookies = Response()
        await auth_api.dev_login(body, request, cookies, session)
    return _with_cookies(cookies, see_other(target))


@router.post("/sign-out")
async def sign_out(request: Request, user: FormUser, session: SessionDep) -> Response:
    assert session_token(request) is not None  # FormUser guarantees it
    cookies = await auth_api.logout(request, user, session)
    return _with_cookies(cookies, see_other("/sign-in"))


@router.get("/")
async def home(request: Request, user: PageUser, session: SessionDep) -> Response:
    campaigns, _ = await campaign_service.list_campaigns(
        session, user=user, pagination=first_page(request, 5)
    )
    return render(
        request,
        "home.html",
        {
            "viewer": viewer(user),
            "balance": await credit_service.get_balance(session, user_id=user.id),
            "onboarding": await onboarding_status(session, user=user),
            "campaigns": await campaign_views.campaigns_out(session, campaigns),
        },
    )


async def credits_context(request: Request, session: SessionDep, user: Any) -> dict[str, Any]:
    """Balance, packs, prices and the ledger: the credits page, and what a refused
    schedule shows beside the shortfall."""
    settings = _settings(request)
    entries, _ = await credit_service.list_entries(
        session, user_id=user.id, pagination=first_page(request, 50)
    )
    return {
        "balance": await credit_service.get_balance(session, user_id=user.id),
        "pricing": pricing_from_settings(settings),
        "payments_enabled": settings.payments_enabled,
        "ledger": [LedgerEntryOut.model_validate(e) for e in entries],
    }


@router.get("/credits")
async def credits_page(request: Request, user: PageUser, session: SessionDep) -> Response:
    context = await credits_context(request, session, user)
    return render(request, "credits.html", {"viewer": viewer(user), **context})
