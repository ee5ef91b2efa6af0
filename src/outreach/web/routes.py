"""Mount the web app on the FastAPI app: static files and every page router."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from outreach.web.pages import (
    account,
    campaign_page,
    campaigns,
    lists,
    mailboxes,
    resume,
    settings,
    suppressions,
    templates,
)
from outreach.web.rendering import HERE


def install_web(app: FastAPI) -> None:
    """The pages live beside the API (same process, cookie and CSRF rules); they are
    not part of the OpenAPI document."""
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    # campaigns before campaign_page: its /campaigns/{id}/schedule before the page's
    # /campaigns/{id}/{action}.
    pages = (
        account,
        mailboxes,
        resume,
        lists,
        suppressions,
        templates,
        campaigns,
        campaign_page,
        settings,
    )
    for module in pages:
        app.include_router(module.router)
