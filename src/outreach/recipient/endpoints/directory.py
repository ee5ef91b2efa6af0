"""The recipient directory: search and copy for users, import and refresh for admins."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Request, UploadFile

from outreach.auth.dependencies import AdminUser, CurrentUser
from outreach.kit.db import SessionDep
from outreach.kit.errors import problem_responses
from outreach.kit.idempotency import IdempotentRoute
from outreach.kit.pagination import Page, PaginationDep
from outreach.models import ListKind, VerificationJobKind
from outreach.recipient.directory import directory_service
from outreach.recipient.endpoints.common import JobID, ListID, job_out, list_out
from outreach.recipient.importing import import_service
from outreach.recipient.lists import list_service
from outreach.recipient.schemas import (
    DirectoryAddToList,
    DirectoryEntryOut,
    DirectoryRefresh,
    RecipientListOut,
    RecipientsAdded,
    VerificationJobOut,
)
from outreach.recipient.verification import verification_service

router = APIRouter(
    prefix="/v1/recipients/directory", tags=["recipients"], route_class=IdempotentRoute
)
admin_router = APIRouter(prefix="/v1/admin/recipients", tags=["admin"], route_class=IdempotentRoute)
Filter = Annotated[str | None, Query(max_length=200)]


@router.get(
    "",
    summary="Search the recipient directory (company, industry, location, title)",
    responses=problem_responses(400, 401, 422),
)
async def search_directory(
    user: CurrentUser,
    session: SessionDep,
    pagination: PaginationDep,
    q: Filter = None,
    company: Filter = None,
    industry: Filter = None,
    location: Filter = None,
    title: Filter = None,
) -> Page[DirectoryEntryOut]:
    rows, cursor = await directory_service.list_entries(
        session,
        pagination=pagination,
        for_users=True,
        search=q,
        company=company,
        industry=industry,
        location=location,
        title=title,
    )
    return Page(items=[DirectoryEntryOut.model_validate(r) for r in rows], next_cursor=cursor)


@router.post(
    "/add-to-list",
    summary="Copy directory entries into one of your lists",
    responses=problem_responses(401, 403, 404, 409, 422),
)
async def add_directory_entries_to_list(
    body: DirectoryAddToList, user: CurrentUser, session: SessionDep
) -> RecipientsAdded:
    target = await list_service.get_list(session, user_id=user.id, list_id=body.list_id)
    added, duplicates, suppressed = await directory_service.add_to_list(
        session, recipient_list=target, ids=body.ids
    )
    return RecipientsAdded(added=added, duplicates=duplicates, suppressed=suppressed)


@admin_router.get(
    "",
    summary="Directory entries, with undeliverable ones (administrators)",
    responses=problem_responses(400, 401, 403, 422),
)
async def admin_list_directory(
    admin: AdminUser,
    session: SessionDep,
    pagination: PaginationDep,
    q: Filter = None,
    company: Filter = None,
    industry: Filter = None,
    location: Filter = None,
    title: Filter = None,
) -> Page[DirectoryEntryOut]:
    rows, cursor = await directory_service.list_entries(
        session,
        pagination=pagination,
        for_users=False,
        search=q,
        company=company,
        industry=industry,
        location=location,
        title=title,
    )
    return Page(items=[DirectoryEntryOut.model_validate(r) for r in rows], next_cursor=cursor)


@admin_router.post(
    "/import",
    status_code=202,
    summary="Import a CSV/XLSX (company, contact name, title, email, domain, industry, "
    "location, source) into the directory (audited)",
    responses=problem_responses(401, 403, 413, 422),
)
async def import_directory(
    request: Request,
    admin: AdminUser,
    session: SessionDep,
    file: Annotated[UploadFile, File()],
    column_mapping: Annotated[str | None, Form(max_length=5000)] = None,
    sheet: Annotated[str | None, Form(max_length=200)] = None,
) -> RecipientListOut:
    upload = await import_service.start_upload(
        session,
        storage=request.app.state.storage,
        user_id=admin.id,
        kind=ListKind.directory,
        file=file,
        name=None,
        column_mapping=column_mapping,
        sheet=sheet,
    )
    return list_out(upload)


@admin_router.get(
    "/imports/{list_id}",
    summary="Progress of a directory import",
    responses=problem_responses(401, 403, 404, 422),
)
async def get_directory_import(
    list_id: ListID, admin: AdminUser, session: SessionDep
) -> RecipientListOut:
    upload = await list_service.get_list(
        session, user_id=admin.id, list_id=list_id, kind=ListKind.directory
    )
    return list_out(upload)


@admin_router.post(
    "/refresh",
    status_code=202,
    summary="Re-verify directory entries older than N days, as a job (audited)",
    responses=problem_responses(401, 403, 422),
)
async def refresh_directory(
    body: DirectoryRefresh, admin: AdminUser, session: SessionDep
) -> VerificationJobOut:
    job = await directory_service.start_refresh(
        session, actor_id=admin.id, older_than_days=body.older_than_days
    )
    return job_out(job)


@admin_router.get(
    "/refresh/{job_id}",
    summary="Progress of a directory refresh",
    responses=problem_responses(401, 403, 404, 422),
)
async def get_directory_refresh(
    job_id: JobID, admin: AdminUser, session: SessionDep
) -> VerificationJobOut:
    job = await verification_service.get_job(
        session, user_id=admin.id, job_id=job_id, kind=VerificationJobKind.directory_refresh.value
    )
    return job_out(job)
