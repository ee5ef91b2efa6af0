"""AI-written email drafts: the configured LLM, or the built-in deterministic writer.

Either way the draft is checked like any saved template (the allowlist) and
uses merge variables, so it personalises per recipient. The built-in writer is
labelled ``built-in``; an LLM draft is labelled ``llm:<model>``.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.config import get_settings
from outreach.credits.pricing import pricing_from_settings
from outreach.credits.service import credit_service
from outreach.kit.errors import ServiceUnavailable
from outreach.kit.logging import get_logger
from outreach.llm.client import LLMError, Message
from outreach.llm.service import llm_service
from outreach.models import LedgerReason, User
from outreach.models.resume import Resume
from outreach.resume.service import ResumeNotFound, resume_service
from outreach.template.profile import register_profile_source
from outreach.template.service import InvalidTemplate, check_content

log = get_logger("outreach.template.generation")

Tone = Literal["warm", "formal", "direct"]
Length = Literal["short", "medium", "long"]


class GenerateRequest(BaseModel):
    target_role: str = Field(min_length=2, max_length=120)
    tone: Tone = "warm"
    resume_id: uuid.UUID | None = Field(default=None, description="Default: your latest resume")
    company: str | None = Field(
        default=None, max_length=200, description="Default: each recipient's"
    )
    job_description: str | None = Field(default=None, max_length=20_000)
    length: Length = "short"
    save_as: str | None = Field(
        default=None, max_length=200, description="Also save it under this name"
    )


class DraftEmail(BaseModel):
    subject: str = Field(min_length=3, max_length=300)
    body_text: str = Field(min_length=20, max_length=5000)


@dataclass(frozen=True)
class Strengths:
    skills: list[str]
    years: float | None
    resume_id: uuid.UUID | None


class GenerationFailed(ServiceUnavailable):
    code, title = "generation_failed", "The writer could not produce a usable draft"


def _strengths(resume: Resume | None, job_description: str | None) -> Strengths:
    if resume is None:
        return Strengths(skills=[], years=None, resume_id=None)
    skills = list(resume.skills)
    if job_description:
        wanted = job_description.lower()
        order = {skill: index for index, skill in enumerate(skills)}
        skills.sort(key=lambda skill: (skill.lower() not in wanted, order[skill]))
    return Strengths(skills=skills[:3], years=resume.years_experience, resume_id=resume.id)


def _years(years: float | None) -> str:
    if not years:
        return ""
    whole = int(years)
    return f"{whole}+ years" if whole >= 1 else "a year"


_OPENINGS = {
    "warm": "I hope your week is going well.",
    "formal": "I am writing to express my interest in opportunities on your team.",
    "direct": "I'll keep this short.",
}
_CLOSINGS = {
    "warm": "Would you be open to a quick 15-minute chat? Happy to work around your schedule.",
    "formal": "I would welcome the opportunity to discuss how I could contribute. Thank you for "
    "your time and consideration.",
    "direct": "Are you the right person to talk to about this? If not, who would be?",
}


def built_in_draft(request: GenerateRequest, strengths: Strengths) -> DraftEmail:
    """A deterministic draft: same inputs, same words. Uses the resume's real skills."""
    role = request.target_role.strip()
    company = request.company.strip() if request.company else "{{ company | default('your team') }}"
    skills = strengths.skills
    experience = _years(strengths.years)
    pitch_parts = []
    if experience:
        pitch_parts.append(f"I bring {experience} of experience")
    if skills:
        joined = ", ".join(skills[:-1]) + (f" and {skills[-1]}" if len(skills) > 1 else skills[0])
        pitch_parts.append(("working with " if experience else "I work with ") + joined)
    pitch = (" ".join(pitch_parts) + ".") if pitch_parts else f"I am focused on {role} work."
    subject_by_tone = {
        "warm": f"{role} at {company}",
        "formal": f"Application interest: {role}",
        "direct": f"{role}: quick question",
    }
    paragraphs = [
        "Hi {{ first_name | default('there') }},",
        _OPENINGS[request.tone],
        f"I'm reaching out about {role} roles at {company}. {pitch}",
    ]
    if request.length in ("medium", "long") and skills:
        paragraphs.append(
            f"Most recently I have used {skills[0]} to ship work that mattered to the people "
            "depending on it, and I'd bring the same care to your team."
        )
    if request.length == "long":
        paragraphs.append(
            "I'm happy to share my resume and a few examples of past work if that would help."
        )
    paragraphs += [_CLOSINGS[request.tone], "Best regards,\n{{ sender.name | default('') }}"]
    return DraftEmail(subject=subject_by_tone[request.tone], body_text="\n\n".join(paragraphs))


_SYSTEM = (
    "You write short, honest cold emails from a job seeker to a recruiter or hiring manager. "
    "Use only facts given to you; never invent employers, numbers or achievements. "
    'Answer with a JSON object {"subject": str, "body_text": str}. In the text you may use '
    "exactly these merge variables and nothing else: {{ first_name | default('there') }}, "
    "{{ company | default('your team') }}, {{ title | default('') }}, {{ sender.name }}. "
    "No other braces, no loops, no links, no signature block beyond the sender's name."
)


async def _llm_draft(request: GenerateRequest, strengths: Strengths) -> tuple[DraftEmail, str]:
    client = llm_service.client()
    facts = {
        "target_role": request.target_role,
        "tone": request.tone,
        "length": request.length,
        "company": request.company,
        "top_skills": strengths.skills,
        "years_experience": strengths.years,
        "job_description": (request.job_description or "")[:4000],
    }
    draft = await client.complete_json(
        [Message("system", _SYSTEM), Message("user", str(facts))], DraftEmail, temperature=0.4
    )
    return draft, f"llm:{client.model}"


class TemplateGenerator:
    async def _resume(
        self, session: AsyncSession, user: User, resume_id: uuid.UUID | None
    ) -> Resume | None:
        if resume_id is not None:
            return await resume_service.get(session, user=user, resume_id=resume_id)
        try:
            resume, _ = await resume_service.latest(session, user=user)
        except ResumeNotFound:
            return None
        return resume

    async def generate(
        self, session: AsyncSession, *, user: User, request: GenerateRequest, charge_key: str
    ) -> tuple[DraftEmail, str, Strengths, int]:
        """Write a draft and charge for it once per ``charge_key``.

        Returns (draft, writer label, strengths used, credits charged)."""
        strengths = _strengths(
            await self._resume(session, user, request.resume_id), request.job_description
        )
        draft, writer = built_in_draft(request, strengths), "built-in"
        if llm_service.configured():
            try:
                candidate, label = await _llm_draft(request, strengths)
                check_content(candidate.subject, candidate.body_text, None)
                draft, writer = candidate, label
            except (LLMError, InvalidTemplate) as exc:
                # The model failed or wrote something the template language refuses:
                # say so, and hand back the built-in draft rather than nothing.
                log.warning("llm draft not used", error=str(exc)[:300])
                writer = "built-in (the model's draft was not usable)"
        price = pricing_from_settings(get_settings()).ai_template
        if price:
            await credit_service.apply_ledger_entry(
                session,
                user_id=user.id,
                delta=-price,
                reason=LedgerReason.ai_template,
                ref=request.target_role[:200],
                idempotency_key=charge_key,
            )
        return draft, writer, strengths, price


def charge_key(user: User, idempotency_key: str | None) -> str:
    """One charge per request; a retried request with the same key is not charged again."""
    if idempotency_key is None:
        return f"ai-template:{uuid.uuid4()}"
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
    return f"ai-template:{user.id}:{digest}"


async def _resume_highlights(session: AsyncSession, user: User) -> dict[str, object]:
    """``sender.top_skills``, ``sender.years_experience`` and ``sender.target_role``
    (the role of the latest resume analysis) from the user's latest resume."""
    try:
        resume, analysis = await resume_service.latest(session, user=user)
    except ResumeNotFound:
        return {}
    return {
        "top_skills": ", ".join(resume.skills[:3]),
        "years_experience": _years(resume.years_experience) or None,
        "target_role": analysis.target_role if analysis is not None else None,
    }


register_profile_source(_resume_highlights)
template_generator = TemplateGenerator()
