"""Resume: upload, the ATS report for people (score, bars, red flags first, what the ATS
saw, keywords), and the history of uploads."""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response
from starlette.datastructures import UploadFile as FormFile

from outreach.kit.db import SessionDep
from outreach.models import User
from outreach.resume.schemas import AnalysisOut, AnalyzeRequest, ResumeSummary, analysis_out
from outreach.resume.service import ResumeNotFound, resume_service
from outreach.web.auth import FormUser, PageForm, PageUser
from outreach.web.pages.common import first_page, page_router, viewer
from outreach.web.rendering import (
    FormInvalid,
    parse_form,
    refused_form,
    render,
    see_other,
    typed_values,
)

router = page_router()


async def _context(request: Request, session: SessionDep, user: User) -> dict[str, Any]:
    resumes, _ = await resume_service.list_resumes(
        session, user=user, pagination=first_page(request, 20)
    )
    analysis: AnalysisOut | None = None
    if resumes:
        found = await resume_service.latest_analysis(session, user=user, resume=resumes[0])
        analysis = analysis_out(found) if found else None
    return {
        "viewer": viewer(user),
        "resumes": [ResumeSummary.model_validate(r) for r in resumes],
        "analysis": analysis,
        "quota": await resume_service.quota(session, user=user),
    }


@router.get("/resume")
async def resume_page(request: Request, user: PageUser, session: SessionDep) -> Response:
    return render(request, "resume.html", await _context(request, session, user))


@router.post("/resume")
async def upload_resume(
    request: Request, user: FormUser, session: SessionDep, form: PageForm
) -> Response:
    context = {**await _context(request, session, user), "values": typed_values(form)}
    async with refused_form("resume.html", context):
        file = form.get("file")
        if not isinstance(file, FormFile) or not file.filename:
            raise FormInvalid("choose your resume, a PDF or DOCX file")
        limit = request.app.state.settings.resume_max_bytes
        await resume_service.upload(
            session,
            storage=request.app.state.storage,
            pool=request.app.state.parsing_pool,
            user=user,
            file_name=file.filename,
            data=await file.read(limit + 1),
        )
    return see_other("/resume")


@router.post("/resume/analyze")
async def analyze_resume(
    request: Request, user: FormUser, session: SessionDep, form: PageForm
) -> Response:
    context = {**await _context(request, session, user), "values": typed_values(form)}
    async with refused_form("resume.html", context):
        resumes = context["resumes"]
        if not resumes:
            raise ResumeNotFound("upload your resume first")
        fields = {
            "resume_id": str(resumes[0].id),
            "target_role": form.get("target_role") or None,
            "job_description": form.get("job_description") or None,
        }
        body = parse_form(AnalyzeRequest, fields)
        await resume_service.analyze(
            session,
            user=user,
            resume_id=body.resume_id,
            target_role=body.target_role,
            job_description=body.job_description,
            idempotency_key=None,
        )
    return see_other("/resume#report")
