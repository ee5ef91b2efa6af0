"""What several pages share: a small page of rows, the viewer, the router factory."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from outreach.kit.pagination import Pagination
from outreach.models import User
from outreach.web.rendering import PageRoute


def page_router() -> APIRouter:
    return APIRouter(route_class=PageRoute, include_in_schema=False)


def first_page(request: Request, limit: int = 20) -> Pagination:
    """The newest ``limit`` rows, as the API's first page would give them."""
    key = request.app.state.settings.secret_key.get_secret_value().encode()
    return Pagination(limit=limit, after=None, signing_key=key)


def viewer(user: User) -> dict[str, Any]:
    """What the layout shows of the user: plain values, safe after a rollback."""
    return {"email": user.email, "name": user.name, "id": str(user.id)}
