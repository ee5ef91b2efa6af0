"""/v1/admin: users, roles, credit grants and the audit log (administrators only)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request

from outreach.admin.schemas import (
    AdminCampaignOut,
    AdminStats,
    AdminUserOut,
    AuditLogOut,
    CreditGrant,
    CreditGrantOut,
    FailedJobOut,
    FailedJobRetryOut,
    RoleChange,
)
from outreach.admin.service import admin_service
from outreach.auth.dependencies import AdminUser, IdempotencyOptional, IdempotencyRequired
from outreach.auth.service import auth_service
from outreach.campaign.views import campaigns_out
from outreach.credits.schemas import LedgerEntryOut
from outreach.credits.service import credit_service
from outreach.kit.db import SessionDep
from outreach.kit.errors import problem_responses
from outreach.kit.idempotency import HEADER, IdempotentRoute
from outreach.kit.pagination import Page, PaginationDep
from outreach.kit.schemas import IsoDateTime
from outreach.models import CampaignStatus, User

router = APIRouter(prefix="/v1/admin", tags=["admin"], route_class=IdempotentRoute)
UserID = Annotated[uuid.UUID, Path(description="The user's id")]
FailedJobID = Annotated[uuid.UUID, Path(description="The failed job's id")]


def _user_out(user: User, balance: int) -> AdminUserOut:
    fields = set(AdminUserOut.model_fields) - {"credit_balance"}
    return AdminUserOut(**{name: getattr(user, name) for name in fields}, credit_balance=balance)


@router.get(
    "/users",
    summary="Users, newest first; search by email or name",
    responses=problem_responses(400, 401, 403, 422),
)
async def list_users(
    admin: AdminUser,
    session: SessionDep,
    pagination: PaginationDep,
    q: Annotated[str | None, Query(max_length=200, description="Part of email or name")] = None,
) -> Page[AdminUserOut]:
    rows, cursor = await admin_service.list_users(session, pagination=pagination, search=q)
    return Page(items=[_user_out(user, balance) for user, balance in rows], next_cursor=cursor)


@router.post(
    "/users/{user_id}/role",
    summary="Make a user an admin, or not",
    responses=problem_responses(401, 403, 404, 422),
)
async def change_role(
    user_id: UserID, body: RoleChange, admin: AdminUser, session: SessionDep
) -> AdminUserOut:
    user = await auth_service.get_user(session, user_id)
    await auth_service.set_role(session, user=user, role=body.role, actor_id=admin.id)
    return _user_out(user, await credit_service.get_balance(session, user_id=user.id))


@router.post(
    "/users/{user_id}/credits",
    summary="Grant (positive delta) or deduct (negative) credits; Idempotency-Key required",
    dependencies=[IdempotencyRequired],
    responses=problem_responses(400, 401, 402, 403, 404, 409, 422),
)
async def grant_credits(
    user_id: UserID, body: CreditGrant, request: Request, admin: AdminUser, session: SessionDep
) -> CreditGrantOut:
    user = await auth_service.get_user(session, user_id)
    entry = await admin_service.grant_credits(
        session,
        user=user,
        delta=body.delta,
        reason=body.reason,
        actor_id=admin.id,
        idempotency_key=f"admin:{admin.id}:{request.headers[HEADER]}",
    )
    return CreditGrantOut(entry=LedgerEntryOut.model_validate(entry), balance=entry.balance_after)


@router.get(
    "/audit-logs",
    summary="The audit trail, newest first",
    responses=problem_responses(400, 401, 403, 422),
)
async def list_audit_logs(
    admin: AdminUser,
    session: SessionDep,
    pagination: PaginationDep,
    actor_id: uuid.UUID | None = None,
    action: Annotated[str | None, Query(max_length=100)] = None,
    since: IsoDateTime | None = None,
    until: IsoDateTime | None = None,
) -> Page[AuditLogOut]:
    logs, cursor = await admin_service.list_audit_logs(
        session, pagination=pagination, actor_id=actor_id, action=action, since=since, until=until
    )
    return Page(items=[AuditLogOut.model_validate(log) for log in logs], next_cursor=cursor)


@router.get(
    "/failed-jobs",
    summary="Jobs and sends that failed their last attempt, newest first (audited)",
    responses=problem_responses(400, 401, 403, 422),
)
async def list_failed_jobs(
    admin: AdminUser,
    session: SessionDep,
    pagination: PaginationDep,
    task_name: Annotated[str | None, Query(max_length=200, description="Only this task")] = None,
    retried: Annotated[bool | None, Query(description="Only retried (or not retried) ones")] = None,
) -> Page[FailedJobOut]:
    rows, cursor = await admin_service.list_failed_jobs(
        session, actor_id=admin.id, pagination=pagination, task_name=task_name, retried=retried
    )
    return Page(items=[FailedJobOut.model_validate(row) for row in rows], next_cursor=cursor)


@router.post(
    "/failed-jobs/{failed_job_id}/retry",
    summary="Retry a failed job once; a failed send is charged its credit again (idempotent)",
    dependencies=[IdempotencyOptional],
    responses=problem_responses(400, 401, 402, 403, 404, 409, 422),
)
async def retry_failed_job(
    failed_job_id: FailedJobID, admin: AdminUser, session: SessionDep
) -> FailedJobRetryOut:
    return await admin_service.retry_failed_job(
        session, failed_job_id=failed_job_id, actor_id=admin.id
    )


@router.get(
    "/stats",
    summary="Users, mailboxes, sends, failures, revenue and credits outstanding (audited)",
    responses=problem_responses(401, 403),
)
async def stats(admin: AdminUser, session: SessionDep) -> AdminStats:
    return await admin_service.stats(session, actor_id=admin.id)


@router.get(
    "/campaigns",
    summary="Every user's campaigns, newest first; filter by status or user (audited)",
    responses=problem_responses(400, 401, 403, 422),
)
async def list_campaigns(
    admin: AdminUser,
    session: SessionDep,
    pagination: PaginationDep,
    status: CampaignStatus | None = None,
    user_id: uuid.UUID | None = None,
) -> Page[AdminCampaignOut]:
    rows, cursor = await admin_service.list_campaigns(
        session, actor_id=admin.id, pagination=pagination, status=status, user_id=user_id
    )
    outs = await campaigns_out(session, [campaign for campaign, _ in rows])
    items = [
        AdminCampaignOut(**out.model_dump(), user_id=campaign.user_id, user_email=email)
        for out, (campaign, email) in zip(outs, rows, strict=True)
    ]
    return Page(items=items, next_cursor=cursor)
