"""/v1/me: the signed-in user's data rights (export, deletion)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

from outreach.account.export import iter_file
from outreach.account.schemas import AccountDeleted, DeletionConfirmation
from outreach.account.service import account_service
from outreach.auth.dependencies import (
    CurrentUser,
    csrf_cookie_name,
    secure_cookies,
    session_cookie_name,
    session_token,
)
from outreach.config import Settings
from outreach.kit.clock import utcnow
from outreach.kit.db import SessionDep
from outreach.kit.errors import problem_responses
from outreach.kit.idempotency import IdempotentRoute

router = APIRouter(prefix="/v1/me", tags=["account"], route_class=IdempotentRoute)


class ZipResponse(StreamingResponse):
    media_type = "application/zip"


@router.get(
    "/export",
    summary="Download everything we hold about you, as a ZIP (JSON data and your files)",
    response_class=ZipResponse,
    responses={
        200: {
            "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
            "description": "account.json, data/<table>.json and files/ (see docs/api.md)",
        },
        **problem_responses(401),
    },
)
async def export_account(request: Request, user: CurrentUser, session: SessionDep) -> ZipResponse:
    archive, _ = await account_service.export(session, storage=request.app.state.storage, user=user)
    name = f"outreach-export-{utcnow():%Y%m%d-%H%M%S}.zip"
    return ZipResponse(
        iter_file(archive), headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


@router.delete(
    "",
    summary="Delete your account: once to get a confirmation token, again with ?confirm=TOKEN",
    response_model=AccountDeleted,
    responses={
        202: {"model": DeletionConfirmation, "description": "Confirm within 10 minutes"},
        **problem_responses(401, 403, 409, 422),
    },
)
async def delete_account(
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    confirm: Annotated[
        str | None,
        Query(max_length=1000, description="The confirmation_token of the first request"),
    ] = None,
) -> JSONResponse:
    token = session_token(request)
    assert token is not None  # CurrentUser guarantees it
    if confirm is None:
        pending = await account_service.request_deletion(session, user=user, session_token=token)
        return JSONResponse(pending.model_dump(mode="json"), status_code=202)
    deleted = await account_service.delete_account(
        session, user=user, session_token=token, confirmation=confirm
    )
    response = JSONResponse(deleted.model_dump(mode="json"))
    settings: Settings = request.app.state.settings
    secure = secure_cookies(settings)
    response.delete_cookie(
        session_cookie_name(settings), path="/", secure=secure, httponly=True, samesite="lax"
    )
    response.delete_cookie(csrf_cookie_name(settings), path="/", secure=secure, samesite="lax")
    return response
