"""/v1/verify (single and bulk verification) and /v1/enrich (finding addresses)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from outreach.auth.dependencies import CurrentUser, IdempotencyOptional, IdempotencyRequired
from outreach.kit.db import SessionDep
from outreach.kit.errors import problem_responses
from outreach.kit.idempotency import HEADER, IdempotentRoute
from outreach.kit.pagination import MAX_LIMIT, Page
from outreach.models import VerificationJobKind
from outreach.recipient.endpoints.common import JobID, job_out
from outreach.recipient.enrichment import enrichment_service
from outreach.recipient.schemas import (
    EnrichBulkRequest,
    VerificationJobOut,
    VerificationOut,
    VerificationResultOut,
    VerifyBulkRequest,
    VerifyEmailRequest,
)
from outreach.recipient.verification import verification_service

verify_router = APIRouter(prefix="/v1/verify", tags=["verification"], route_class=IdempotentRoute)
enrich_router = APIRouter(prefix="/v1/enrich", tags=["enrichment"], route_class=IdempotentRoute)


@verify_router.post(
    "/email",
    summary="Verify one address now (1 credit; free if you verified it recently)",
    dependencies=[IdempotencyOptional],
    responses=problem_responses(400, 401, 402, 403, 409, 422),
)
async def verify_email(
    body: VerifyEmailRequest, request: Request, user: CurrentUser, session: SessionDep
) -> VerificationOut:
    result, cached, charged = await verification_service.verify_email(
        session, user_id=user.id, email=body.email, idempotency_key=request.headers.get(HEADER)
    )
    return VerificationOut(
        email=result.email,
        status=result.status,
        reasons=result.reasons,
        details=result.details,
        verified_at=result.verified_at,
        cached=cached,
        credits_charged=charged,
    )


@verify_router.post(
    "/bulk",
    status_code=202,
    summary="Verify a list or up to 10,000 addresses as a job; Idempotency-Key required",
    dependencies=[IdempotencyRequired],
    responses=problem_responses(400, 401, 402, 403, 404, 409, 422),
)
async def verify_bulk(
    body: VerifyBulkRequest, request: Request, user: CurrentUser, session: SessionDep
) -> VerificationJobOut:
    job = await verification_service.start_bulk(
        session,
        user_id=user.id,
        list_id=body.list_id,
        emails=body.emails,
        idempotency_key=request.headers[HEADER],
    )
    return job_out(job)


@verify_router.get(
    "/jobs/{job_id}",
    summary="A bulk verification's progress, counts and credits",
    responses=problem_responses(401, 404, 422),
)
async def get_verify_job(
    job_id: JobID, user: CurrentUser, session: SessionDep
) -> VerificationJobOut:
    job = await verification_service.get_job(
        session, user_id=user.id, job_id=job_id, kind=VerificationJobKind.verify.value
    )
    return job_out(job)


@verify_router.get(
    "/jobs/{job_id}/results",
    summary="Per-address results of a bulk verification of inline addresses",
    responses=problem_responses(401, 404, 422),
)
async def list_verify_results(
    job_id: JobID,
    user: CurrentUser,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    cursor: Annotated[str | None, Query(max_length=320, description="next_cursor")] = None,
) -> Page[VerificationResultOut]:
    job = await verification_service.get_job(
        session, user_id=user.id, job_id=job_id, kind=VerificationJobKind.verify.value
    )
    rows, next_cursor = await verification_service.list_job_results(
        session, job=job, after=cursor, limit=limit
    )
    return Page(
        items=[VerificationResultOut.model_validate(r) for r in rows], next_cursor=next_cursor
    )


@enrich_router.post(
    "/bulk",
    summary=(
        "Find verified addresses at companies (2 credits per address found); small requests "
        "answer 200 with results, larger ones 202 with a job; Idempotency-Key required"
    ),
    status_code=202,
    dependencies=[IdempotencyRequired],
    responses={
        200: {"model": VerificationJobOut},
        **problem_responses(400, 401, 402, 403, 404, 409, 422),
    },
)
async def enrich_bulk(
    body: EnrichBulkRequest,
    request: Request,
    response: Response,
    user: CurrentUser,
    session: SessionDep,
) -> VerificationJobOut:
    job = await enrichment_service.start_bulk(
        session,
        user_id=user.id,
        companies=[c.model_dump() for c in body.companies] if body.companies else None,
        list_id=body.list_id,
        add_to_list_id=body.add_to_list_id,
        idempotency_key=request.headers[HEADER],
    )
    if job.status == "completed":
        response.status_code = 200
    return job_out(job, with_results=True)


@enrich_router.get(
    "/jobs/{job_id}",
    summary="An enrichment run: progress, results and credits",
    responses=problem_responses(401, 404, 422),
)
async def get_enrich_job(
    job_id: JobID, user: CurrentUser, session: SessionDep
) -> VerificationJobOut:
    job = await verification_service.get_job(
        session, user_id=user.id, job_id=job_id, kind=VerificationJobKind.enrich.value
    )
    return job_out(job, with_results=True)
