"""Resumes: upload and parse, list and delete, analyse against the rubric, quota."""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from outreach.config import get_settings
from outreach.credits.pricing import pricing_from_settings
from outreach.credits.service import InsufficientCredits, credit_service
from outreach.kit.audit import record_audit
from outreach.kit.clock import utcnow
from outreach.kit.errors import (
    FieldError,
    NotFound,
    PayloadTooLarge,
    Unprocessable,
    UnsupportedMediaType,
)
from outreach.kit.logging import get_logger
from outreach.kit.pagination import Pagination, paginate
from outreach.kit.parsing_pool import ParserCrashed, ParsingPool, ParsingTimedOut
from outreach.kit.storage import Storage
from outreach.llm.client import LLMError
from outreach.llm.service import llm_service
from outreach.llm.writer import BUILT_IN, BuiltInWriter, ResumeFeedback, ResumeFeedbackRequest
from outreach.models import LedgerReason, Resume, ResumeAnalysis, User
from outreach.resume.extraction import ExtractionError, extract_document
from outreach.resume.parsing import EMAIL, bullet_lines, find_phone, parse_resume
from outreach.resume.repository import analysis_repository, resume_repository
from outreach.resume.rubric import RUBRIC_VERSION, ResumeFacts, evaluate
from outreach.resume.vocabulary import vocabulary

log = get_logger("outreach.resume")
QUOTA_WINDOW = timedelta(days=30)


class ResumeNotFound(NotFound):
    code, title = "resume_not_found", "Resume not found"


class ResumeTooLarge(PayloadTooLarge):
    code, title = "file_too_large", "The file is larger than the upload limit"


class UnsupportedResumeType(UnsupportedMediaType):
    code, title = "unsupported_file_type", "Only PDF and DOCX resumes are accepted"


class InvalidFileName(Unprocessable):
    code, title = "invalid_file_name", "Invalid file name"


class UnreadableResume(Unprocessable):
    """The file is a PDF/DOCX we will not or cannot read; ``reason`` says why."""

    code, title = "unreadable_resume", "The resume cannot be read"


class NoTextLayer(Unprocessable):
    code, title = "no_text_layer", "The PDF has no text layer"


def _file_error(message: str) -> list[FieldError]:
    return [FieldError(loc=["body", "file"], message=message)]


def check_file_name(name: str | None) -> str:
    """The name to show; a name with path separators or control characters is refused."""
    name = (name or "").strip()
    if not name:
        return "resume"
    if "/" in name or "\\" in name or name in (".", "..") or re.search(r"[\x00-\x1f\x7f]", name):
        raise InvalidFileName(
            "the file name must not contain path separators or control characters",
            errors=[FieldError(loc=["body", "file"], message="invalid file name")],
        )
    return name[:255]


@dataclass(frozen=True)
class Quota:
    free_per_30_days: int
    free_used: int
    next_free_at: datetime | None
    price_after_free: int
    balance: int

    @property
    def free_remaining(self) -> int:
        return max(self.free_per_30_days - self.free_used, 0)


def facts_of(resume: Resume) -> ResumeFacts:
    return ResumeFacts(
        text=resume.text,
        sections=resume.sections,
        contact=resume.contact,
        skills=list(resume.skills),
        years_experience=resume.years_experience,
        layout=resume.layout,
    )


class ResumeService:
    # Upload ------------------------------------------------------------------

    async def upload(
        self,
        session: AsyncSession,
        *,
        storage: Storage,
        pool: ParsingPool,
        user: User,
        file_name: str | None,
        data: bytes,
    ) -> Resume:
        """Check, parse (in the parsing pool) and store a resume. Nothing is stored
        unless the file parsed; a failed database write removes the stored file."""
        settings = get_settings()
        name = check_file_name(file_name)
        if len(data) > settings.resume_max_bytes:
            raise ResumeTooLarge(
                f"a resume may be at most {settings.resume_max_bytes} bytes",
                limit=settings.resume_max_bytes,
                errors=_file_error("file too large"),
            )
        extracted = await self._extract(pool, data)
        resume = self._build(user, name, data, extracted)
        await storage.put(resume.file_key, data, content_type=_CONTENT_TYPES[resume.kind])
        try:
            session.add(resume)
            await session.flush()
        except BaseException:
            await storage.delete(resume.file_key)
            raise
        log.info("resume uploaded", resume_id=str(resume.id), kind=resume.kind)
        return resume

    async def _extract(self, pool: ParsingPool, data: bytes) -> dict[str, Any]:
        try:
            return await pool.run(extract_document, data)
        except ExtractionError as exc:
            raise self._problem(exc) from exc
        except ParsingTimedOut as exc:
            raise UnreadableResume(
                "reading this file took too long; it may be damaged or built to stall parsers",
                reason="parse_timeout",
                errors=_file_error("parse timed out"),
            ) from exc
        except ParserCrashed as exc:
            raise UnreadableResume(
                "the parser stopped on this file (too large when decompressed, or damaged)",
                reason="parser_crashed",
                errors=_file_error("parser crashed"),
            ) from exc

    def _problem(self, exc: ExtractionError) -> Exception:
        errors = _file_error(exc.message)
        if exc.code == "unsupported_file_type":
            return UnsupportedResumeType(exc.message, errors=errors)
        if exc.code == "no_text_layer":
            return NoTextLayer(exc.message, errors=errors)
        return UnreadableResume(exc.message, reason=exc.code, errors=errors)

    def _build(self, user: User, name: str, data: bytes, extracted: dict[str, Any]) -> Resume:
        parsed = parse_resume(
            extracted["text"],
            header_footer_text=extracted["header_footer_text"],
            today=utcnow().date(),
        )
        body, margins = extracted["text"], extracted["header_footer_text"]
        contact_in_body = bool(EMAIL.search(body) or find_phone(body)[0])
        header_footer_contact = bool(EMAIL.search(margins) or find_phone(margins)[0])
        layout = {
            key: extracted[key]
            for key in (
                "page_count",
                "tables",
                "images",
                "image_only_pages",
                "text_boxes",
                "columns",
                "garbled_ratio",
            )
        }
        layout |= {
            "word_count": len(body.split()),
            "headings": parsed.headings,
            "contact_only_in_header_footer": header_footer_contact and not contact_in_body,
        }
        resume_id = uuid.uuid4()
        kind = extracted["kind"]
        return Resume(
            id=resume_id,
            created_at=utcnow(),
            user_id=user.id,
            file_key=f"resumes/{user.id}/{uuid.uuid4().hex}.{kind}",
            file_name=name,
            kind=kind,
            size_bytes=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            page_count=extracted["page_count"],
            text=body,
            sections=parsed.sections,
            contact=parsed.contact,
            skills=parsed.skills,
            years_experience=parsed.years_experience,
            layout=layout,
        )

    # Reading and deleting -------------------------------------------------------

    async def get(self, session: AsyncSession, *, user: User, resume_id: uuid.UUID) -> Resume:
        """One of the user's resumes; another user's is a 404."""
        resume = await resume_repository.get(session, user, resume_id)
        if resume is None:
            raise ResumeNotFound(f"no resume {resume_id}")
        return resume

    async def latest(
        self, session: AsyncSession, *, user: User
    ) -> tuple[Resume, ResumeAnalysis | None]:
        """The newest resume with its newest analysis."""
        resume = await resume_repository.latest(session, user)
        if resume is None:
            raise ResumeNotFound("you have not uploaded a resume yet")
        return resume, await analysis_repository.latest_for(session, user, resume.id)

    async def latest_analysis(
        self, session: AsyncSession, *, user: User, resume: Resume
    ) -> ResumeAnalysis | None:
        return await analysis_repository.latest_for(session, user, resume.id)

    async def list_resumes(
        self, session: AsyncSession, *, user: User, pagination: Pagination
    ) -> tuple[list[Resume], str | None]:
        """The user's resumes, newest first."""
        return await paginate(
            session,
            resume_repository.get_readable_statement(user),
            pagination,
            created_at=Resume.created_at,
            id_column=Resume.id,
        )

    async def delete(
        self, session: AsyncSession, *, storage: Storage, user: User, resume_id: uuid.UUID
    ) -> None:
        """Delete a resume, its analyses and its file."""
        resume = await self.get(session, user=user, resume_id=resume_id)
        file_key = resume.file_key
        await session.delete(resume)
        await record_audit(
            session,
            action="resume.deleted",
            actor_id=user.id,
            target_type="resume",
            target_id=resume_id,
        )
        await session.flush()
        await storage.delete(file_key)

    # Quota and analysis ---------------------------------------------------------

    async def quota(self, session: AsyncSession, *, user: User) -> Quota:
        """Free analyses left in the rolling 30 days, and the price after that."""
        settings = get_settings()
        pricing = pricing_from_settings(settings)
        allowed = settings.resume_free_analyses_per_30_days
        if allowed is None:
            allowed = pricing.free_resume_analyses_per_30_days
        used = await analysis_repository.free_used_since(session, user, utcnow() - QUOTA_WINDOW)
        next_free = used[0] + QUOTA_WINDOW if used and len(used) >= allowed else None
        return Quota(
            free_per_30_days=allowed,
            free_used=len(used),
            next_free_at=next_free,
            price_after_free=pricing.resume_analysis,
            balance=await credit_service.get_balance(session, user_id=user.id),
        )

    async def analyze(
        self,
        session: AsyncSession,
        *,
        user: User,
        resume_id: uuid.UUID,
        target_role: str | None,
        job_description: str | None,
        idempotency_key: str | None,
    ) -> ResumeAnalysis:
        """Score a resume with the rubric, add the writer's summary and rewrites, and
        take a free analysis or charge the price (402 when credits are short)."""
        resume = await self.get(session, user=user, resume_id=resume_id)
        quota = await self.quota(session, user=user)
        if not quota.free_remaining and quota.balance < quota.price_after_free:
            raise self._short(quota)
        report = evaluate(
            facts_of(resume), target_role=target_role, job_description=job_description
        )
        feedback, writer, note = await self._feedback(report, resume, target_role, job_description)
        await analysis_repository.lock_user(session, user)
        quota = await self.quota(session, user=user)
        analysis_id = uuid.uuid4()
        free = quota.free_remaining > 0
        charged = 0 if free else quota.price_after_free
        if charged:
            key = f"resume_analysis:{user.id}:" + (idempotency_key or str(analysis_id))
            try:
                await credit_service.apply_ledger_entry(
                    session,
                    user_id=user.id,
                    delta=-charged,
                    reason=LedgerReason.resume_analysis,
                    ref=f"resume_analysis:{analysis_id}",
                    idempotency_key=key,
                )
            except InsufficientCredits:
                raise self._short(quota) from None
        report |= {
            "summary": feedback.summary,
            "bullet_rewrites": [b.model_dump() for b in feedback.bullet_rewrites],
            "writer": writer,
            "writer_note": note,
            "analyzers": {
                "score": f"rubric:{RUBRIC_VERSION}",
                "suggestions": f"rubric:{RUBRIC_VERSION}",
                "summary": writer,
                "bullet_rewrites": writer,
            },
        }
        analysis = ResumeAnalysis(
            id=analysis_id,
            created_at=utcnow(),
            user_id=user.id,
            resume_id=resume.id,
            rubric_version=RUBRIC_VERSION,
            score=report["score"],
            target_role=target_role,
            job_description_sha256=(
                hashlib.sha256(job_description.encode()).hexdigest() if job_description else None
            ),
            free=free,
            credits_charged=charged,
            writer=writer,
            report=report,
        )
        session.add(analysis)
        await session.flush()
        return analysis

    def _short(self, quota: Quota) -> InsufficientCredits:
        return InsufficientCredits(
            f"your free analysis for this 30-day period is used; an analysis costs "
            f"{quota.price_after_free} credits and you have {quota.balance}",
            required=quota.price_after_free,
            available=quota.balance,
            next_free_at=quota.next_free_at.isoformat() if quota.next_free_at else None,
        )

    async def _feedback(
        self,
        report: dict[str, Any],
        resume: Resume,
        target_role: str | None,
        job_description: str | None,
    ) -> tuple[ResumeFeedback, str, str | None]:
        """The writer's summary and rewrites; the built-in writer when the LLM fails."""
        request = _feedback_request(report, resume, target_role, job_description)
        writer = llm_service.writer()
        try:
            return await writer.resume_feedback(request), writer.name, None
        except LLMError as exc:
            log.warning("llm writer failed; using the built-in writer", error=str(exc))
            feedback = await BuiltInWriter().resume_feedback(request)
            return feedback, BUILT_IN, f"{writer.name} was unavailable ({exc}); built-in used"


def _feedback_request(
    report: dict[str, Any], resume: Resume, target_role: str | None, job_description: str | None
) -> ResumeFeedbackRequest:
    subs = sorted(report["sub_scores"], key=lambda s: s["score"] / s["max"], reverse=True)
    weak_phrases = vocabulary().weak_phrases
    bullets = [
        line
        for line in bullet_lines(resume.sections)
        if line.lower().startswith(weak_phrases) or not re.search(r"\d", line)
    ]
    return ResumeFeedbackRequest(
        score=report["score"],
        target=target_role or ("the job description" if job_description else None),
        years_experience=resume.years_experience,
        skills=list(resume.skills),
        strongest=[s["name"] for s in subs if s["score"] == s["max"]][:3],
        weakest=[s["name"] for s in reversed(subs) if s["score"] < s["max"]][:3],
        missing_keywords=[m["keyword"] for m in report["keywords"]["missing"]],
        bullets=bullets,
    )


_CONTENT_TYPES = {
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
}

resume_service = ResumeService()
