"""HTTP endpoints of the recipient domain, one module per area."""

from fastapi import APIRouter

from outreach.recipient.endpoints.directory import admin_router as directory_admin_router
from outreach.recipient.endpoints.directory import router as directory_router
from outreach.recipient.endpoints.lists import router as lists_router
from outreach.recipient.endpoints.suppressions import admin_router as suppressions_admin_router
from outreach.recipient.endpoints.suppressions import router as suppressions_router
from outreach.recipient.endpoints.verification import enrich_router, verify_router

routers: list[APIRouter] = [
    directory_router,  # before lists_router: /v1/recipients/directory is not a list id
    lists_router,
    suppressions_router,
    verify_router,
    enrich_router,
    directory_admin_router,
    suppressions_admin_router,
]
