"""/v1/suppressions (yours) and /v1/admin/suppressions (everyone's)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, File, Form, Path, Query, Request, UploadFile

from outreach.auth.dependencies import AdminUser, CurrentUser
from outreach.kit.db import SessionDep
from outreach.kit.errors import problem_responses
from outreach.kit.idempotency import IdempotentRoute
from outreach.kit.pagination import Page, PaginationDep
from outreach.models import ListKind, SuppressionReason
from outreach.recipient.endpoints.common import ListID, list_out
from outreach.recipient.importing import import_service
from outreach.recipient.lists import list_service
from outreach.recipient.schemas import RecipientListOut, SuppressionCreate, SuppressionOut
from outreach.recipient.suppression import suppression_service

router = APIRouter(prefix="/v1/suppressions", tags=["suppressions"], route_class=IdempotentRoute)
admin_router = APIRouter(
    prefix="/v1/admin/suppressions", tags=["admin"], route_class=IdempotentRoute
)
SuppressionID = Annotated[uuid.UUID, Path(description="The suppression's id")]
Search = Annotated[str | None, Query(max_length=200, description="Part of the address/domain")]


@router.get("", summary="Your suppressions, newest first", responses=problem_responses(400, 401))
async def list_suppressions(
    user: CurrentUser,
    session: SessionDep,
    pagination: PaginationDep,
    q: Search = None,
    reason: SuppressionReason | None = None,
) -> Page[SuppressionOut]:
    rows, cursor = await suppression_service.list_suppressions(
        session, user_id=user.id, pagination=pagination, search=q, reason=reason
    )
    return Page(items=[SuppressionOut.model_validate(r) for r in rows], next_cursor=cursor)


@router.post(
    "",
    status_code=201,
    summary="Suppress an address or a whole domain for you (idempotent)",
    responses=problem_responses(401, 403, 422),
)
async def add_suppression(
    body: SuppressionCreate, user: CurrentUser, session: SessionDep
) -> SuppressionOut:
    row = await suppression_service.add(
        session, user_id=user.id, value=body.value, reason=body.reason, source=body.source or "api"
    )
    return SuppressionOut.model_validate(row)


@router.delete(
    "/{suppression_id}",
    status_code=204,
    summary="Remove one of your suppressions",
    responses=problem_responses(401, 403, 404, 422),
)
async def remove_suppression(
    suppression_id: SuppressionID, user: CurrentUser, session: SessionDep
) -> None:
    await suppression_service.remove(session, user_id=user.id, suppression_id=suppression_id)


@router.post(
    "/import",
    status_code=202,
    summary="Import a CSV of addresses or domains to suppress (column email; optional reason)",
    responses=problem_responses(401, 403, 413, 422),
)
async def import_suppressions(
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    file: Annotated[UploadFile, File(description="CSV or XLSX")],
    reason: Annotated[SuppressionReason, Form()] = SuppressionReason.manual,
    column_mapping: Annotated[str | None, Form(max_length=5000)] = None,
) -> RecipientListOut:
    upload = await import_service.start_upload(
        session,
        storage=request.app.state.storage,
        user_id=user.id,
        kind=ListKind.suppressions,
        file=file,
        name=None,
        column_mapping=column_mapping,
        options={"reason": reason.value},
    )
    return list_out(upload)


@router.get(
    "/imports/{list_id}",
    summary="Progress of a suppression import",
    responses=problem_responses(401, 404, 422),
)
async def get_suppression_import(
    list_id: ListID, user: CurrentUser, session: SessionDep
) -> RecipientListOut:
    upload = await list_service.get_list(
        session, user_id=user.id, list_id=list_id, kind=ListKind.suppressions
    )
    return list_out(upload)


@admin_router.get(
    "", summary="Global suppressions, newest first", responses=problem_responses(400, 401, 403)
)
async def list_global_suppressions(
    admin: AdminUser,
    session: SessionDep,
    pagination: PaginationDep,
    q: Search = None,
    reason: SuppressionReason | None = None,
) -> Page[SuppressionOut]:
    rows, cursor = await suppression_service.list_suppressions(
        session, user_id=None, pagination=pagination, search=q, reason=reason
    )
    return Page(items=[SuppressionOut.model_validate(r) for r in rows], next_cursor=cursor)


@admin_router.post(
    "",
    status_code=201,
    summary="Suppress an address or domain for every user (audited)",
    responses=problem_responses(401, 403, 422),
)
async def add_global_suppression(
    body: SuppressionCreate, admin: AdminUser, session: SessionDep
) -> SuppressionOut:
    row = await suppression_service.add(
        session,
        user_id=None,
        value=body.value,
        reason=body.reason,
        source=body.source or "admin",
        actor_id=admin.id,
    )
    return SuppressionOut.model_validate(row)


@admin_router.delete(
    "/{suppression_id}",
    status_code=204,
    summary="Remove a global suppression (audited)",
    responses=problem_responses(401, 403, 404, 422),
)
async def remove_global_suppression(
    suppression_id: SuppressionID, admin: AdminUser, session: SessionDep
) -> None:
    await suppression_service.remove(
        session, user_id=None, suppression_id=suppression_id, actor_id=admin.id
    )
