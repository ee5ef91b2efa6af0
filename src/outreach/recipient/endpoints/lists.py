"""/v1/recipients/lists: upload, status, items, errors, export, delete, add by hand."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi.responses import Response, StreamingResponse

from outreach.auth.dependencies import CurrentUser
from outreach.config import Settings
from outreach.kit.db import SessionDep
from outreach.kit.errors import problem_responses
from outreach.kit.idempotency import IdempotentRoute
from outreach.kit.pagination import MAX_LIMIT, Page, PaginationDep
from outreach.models import ListKind
from outreach.recipient.endpoints.common import ListID, list_out
from outreach.recipient.importing import import_service
from outreach.recipient.lists import list_service
from outreach.recipient.schemas import (
    ImportErrorOut,
    RecipientListCreate,
    RecipientListOut,
    RecipientOut,
    RecipientsAdd,
    RecipientsAdded,
)

router = APIRouter(prefix="/v1/recipients", tags=["recipients"], route_class=IdempotentRoute)
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT)]
Cursor = Annotated[str | None, Query(max_length=500)]


def _secret(request: Request) -> bytes:
    settings: Settings = request.app.state.settings
    return settings.secret_key.get_secret_value().encode()


@router.post(
    "/lists/upload",
    status_code=202,
    summary="Upload a CSV or XLSX list; it is imported in the background",
    responses=problem_responses(401, 403, 413, 422),
)
async def upload_list(
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    file: Annotated[UploadFile, File(description="CSV (any delimiter) or XLSX")],
    name: Annotated[str | None, Form(max_length=200)] = None,
    column_mapping: Annotated[
        str | None,
        Form(max_length=5000, description='JSON {field: column}, e.g. {"email": "E-mail"}'),
    ] = None,
    sheet: Annotated[str | None, Form(max_length=200, description="XLSX sheet")] = None,
) -> RecipientListOut:
    recipient_list = await import_service.start_upload(
        session,
        storage=request.app.state.storage,
        user_id=user.id,
        kind=ListKind.recipients,
        file=file,
        name=name,
        column_mapping=column_mapping,
        sheet=sheet,
    )
    return list_out(recipient_list)


@router.post(
    "/lists",
    status_code=201,
    summary="Create an empty list to fill by hand or from the directory",
    responses=problem_responses(401, 403, 422),
)
async def create_list(
    body: RecipientListCreate, user: CurrentUser, session: SessionDep
) -> RecipientListOut:
    recipient_list = await list_service.create_list(session, user_id=user.id, name=body.name)
    return list_out(recipient_list, 0)


@router.get(
    "/lists", summary="Your recipient lists, newest first", responses=problem_responses(400, 401)
)
async def list_lists(
    user: CurrentUser, session: SessionDep, pagination: PaginationDep
) -> Page[RecipientListOut]:
    lists, cursor = await list_service.list_lists(session, user_id=user.id, pagination=pagination)
    return Page(items=[list_out(item) for item in lists], next_cursor=cursor)


@router.get(
    "/lists/{list_id}",
    summary="A list: status, progress, counts and column mapping",
    responses=problem_responses(401, 404, 422),
)
async def get_list(list_id: ListID, user: CurrentUser, session: SessionDep) -> RecipientListOut:
    found = await list_service.get_list(session, user_id=user.id, list_id=list_id)
    return list_out(found, await list_service.count_recipients(session, list_id=found.id))


@router.get(
    "/lists/{list_id}/items",
    summary="The list's recipients in file order; filter by verification status, search",
    responses=problem_responses(400, 401, 404, 422),
)
async def list_items(
    request: Request,
    list_id: ListID,
    user: CurrentUser,
    session: SessionDep,
    limit: Limit = 50,
    cursor: Cursor = None,
    status: Literal["unverified", "deliverable", "risky", "undeliverable", "unknown"] | None = None,
    q: Annotated[
        str | None, Query(max_length=200, description="Part of email/name/company")
    ] = None,
) -> Page[RecipientOut]:
    found = await list_service.get_list(session, user_id=user.id, list_id=list_id)
    items, next_cursor = await list_service.list_items(
        session,
        recipient_list=found,
        limit=limit,
        cursor=cursor,
        secret=_secret(request),
        status=status,
        search=q,
    )
    return Page(items=[RecipientOut.model_validate(i) for i in items], next_cursor=next_cursor)


@router.post(
    "/lists/{list_id}/items",
    status_code=201,
    summary="Add recipients by hand (all valid, or none added)",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def add_items(
    list_id: ListID, body: RecipientsAdd, user: CurrentUser, session: SessionDep
) -> RecipientsAdded:
    found = await list_service.get_list(session, user_id=user.id, list_id=list_id)
    added, duplicates, suppressed = await list_service.add_recipients(
        session, recipient_list=found, items=body.items
    )
    return RecipientsAdded(added=added, duplicates=duplicates, suppressed=suppressed)


@router.get(
    "/lists/{list_id}/errors",
    summary="The import's row errors (row number, column, reason)",
    responses=problem_responses(400, 401, 404, 422),
)
async def list_errors(
    request: Request,
    list_id: ListID,
    user: CurrentUser,
    session: SessionDep,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[ImportErrorOut]:
    found = await list_service.get_list(session, user_id=user.id, list_id=list_id)
    errors, next_cursor = await list_service.list_errors(
        session, recipient_list=found, limit=limit, cursor=cursor, secret=_secret(request)
    )
    return Page(items=[ImportErrorOut.model_validate(e) for e in errors], next_cursor=next_cursor)


@router.get(
    "/lists/{list_id}/errors/export",
    summary="The import's row errors as CSV (formula-injection-safe cells)",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}, **problem_responses(401, 404, 422)},
)
async def export_errors(list_id: ListID, user: CurrentUser, session: SessionDep) -> Response:
    found = await list_service.get_list(session, user_id=user.id, list_id=list_id)
    return Response(
        await list_service.errors_csv(session, recipient_list=found),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="list-{found.id}-errors.csv"'},
    )


@router.get(
    "/lists/{list_id}/export",
    summary="The list as CSV (cells that a spreadsheet would run as formulas are escaped)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}, **problem_responses(401, 404, 422)},
)
async def export_list(
    request: Request, list_id: ListID, user: CurrentUser, session: SessionDep
) -> StreamingResponse:
    found = await list_service.get_list(session, user_id=user.id, list_id=list_id)
    return StreamingResponse(
        list_service.export_csv(request.app.state.database, list_id=found.id),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="list-{found.id}.csv"'},
    )


@router.delete(
    "/lists/{list_id}",
    status_code=204,
    summary="Delete a list with its recipients and file",
    responses=problem_responses(401, 403, 404, 422),
)
async def delete_list(
    request: Request, list_id: ListID, user: CurrentUser, session: SessionDep
) -> None:
    found = await list_service.get_list(session, user_id=user.id, list_id=list_id)
    await list_service.delete_list(session, storage=request.app.state.storage, recipient_list=found)
