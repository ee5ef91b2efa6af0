"""/v1/resume and /v1/resumes: upload, analysis, quota, listing and deletion."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, File, Path, Request, UploadFile, status

from outreach.auth.dependencies import CurrentUser, IdempotencyOptional
from outreach.kit.db import SessionDep
from outreach.kit.errors import problem_responses
from outreach.kit.idempotency import IdempotentRoute
from outreach.kit.pagination import Page, PaginationDep
from outreach.resume.schemas import (
    AnalysisOut,
    AnalyzeRequest,
    LatestResumeOut,
    QuotaOut,
    ResumeOut,
    ResumeSummary,
    analysis_out,
)
from outreach.resume.service import resume_service

router = APIRouter(prefix="/v1", tags=["resumes"], route_class=IdempotentRoute)
ResumeID = Annotated[uuid.UUID, Path(description="The resume's id")]


@router.post(
    "/resume/upload",
    status_code=status.HTTP_201_CREATED,
    summary="Upload a resume (PDF or DOCX) and parse it",
    responses=problem_responses(401, 403, 413, 415, 422),
)
async def upload_resume(
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    file: Annotated[UploadFile, File(description="The resume, PDF or DOCX")],
) -> ResumeOut:
    limit = request.app.state.settings.resume_max_bytes
    resume = await resume_service.upload(
        session,
        storage=request.app.state.storage,
        pool=request.app.state.parsing_pool,
        user=user,
        file_name=file.filename,
        data=await file.read(limit + 1),
    )
    return ResumeOut.model_validate(resume)


@router.post(
    "/resume/analyze",
    summary="ATS analysis of a resume (1 free per 30 days, then credits)",
    dependencies=[IdempotencyOptional],
    responses=problem_responses(400, 401, 402, 403, 404, 409, 422),
)
async def analyze_resume(
    request: Request, body: AnalyzeRequest, user: CurrentUser, session: SessionDep
) -> AnalysisOut:
    context = getattr(request.state, "idempotency", None)
    analysis = await resume_service.analyze(
        session,
        user=user,
        resume_id=body.resume_id,
        target_role=body.target_role,
        job_description=body.job_description,
        idempotency_key=context.key if context is not None else None,
    )
    return analysis_out(analysis)


@router.get(
    "/resume/latest",
    summary="Your newest resume, its parse and its latest analysis",
    responses=problem_responses(401, 404),
)
async def latest_resume(user: CurrentUser, session: SessionDep) -> LatestResumeOut:
    resume, analysis = await resume_service.latest(session, user=user)
    return LatestResumeOut(
        resume=ResumeOut.model_validate(resume),
        latest_analysis=analysis_out(analysis) if analysis else None,
    )


@router.get(
    "/resume/quota",
    summary="Free analyses left and the price after them",
    responses=problem_responses(401),
)
async def resume_quota(user: CurrentUser, session: SessionDep) -> QuotaOut:
    quota = await resume_service.quota(session, user=user)
    return QuotaOut(
        free_per_30_days=quota.free_per_30_days,
        free_used=quota.free_used,
        free_remaining=quota.free_remaining,
        next_free_at=quota.next_free_at,
        price_after_free=quota.price_after_free,
        balance=quota.balance,
    )


@router.get(
    "/resumes", summary="Your resumes, newest first", responses=problem_responses(400, 401, 422)
)
async def list_resumes(
    user: CurrentUser, session: SessionDep, pagination: PaginationDep
) -> Page[ResumeSummary]:
    resumes, next_cursor = await resume_service.list_resumes(
        session, user=user, pagination=pagination
    )
    return Page(items=[ResumeSummary.model_validate(r) for r in resumes], next_cursor=next_cursor)


@router.get(
    "/resumes/{resume_id}",
    summary="One resume with its parse and latest analysis",
    responses=problem_responses(401, 404, 422),
)
async def get_resume(
    resume_id: ResumeID, user: CurrentUser, session: SessionDep
) -> LatestResumeOut:
    resume = await resume_service.get(session, user=user, resume_id=resume_id)
    analysis = await resume_service.latest_analysis(session, user=user, resume=resume)
    return LatestResumeOut(
        resume=ResumeOut.model_validate(resume),
        latest_analysis=analysis_out(analysis) if analysis else None,
    )


@router.delete(
    "/resumes/{resume_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a resume, its file and its analyses",
    responses=problem_responses(401, 403, 404, 422),
)
async def delete_resume(
    request: Request, resume_id: ResumeID, user: CurrentUser, session: SessionDep
) -> None:
    await resume_service.delete(
        session, storage=request.app.state.storage, user=user, resume_id=resume_id
    )
