from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ContactOut(BaseModel):
    name: str | None = None
    email: str | None = None
    phone: str | None = Field(None, description="As written in the resume")
    phone_e164: str | None = Field(None, description="+91…/+1… when the format says which")
    linkedin: str | None = None
    github: str | None = None
    website: str | None = None


class LayoutOut(BaseModel):
    """What the parser noticed about the file's layout (inputs to the red flags)."""

    page_count: int | None = None
    word_count: int = 0
    headings: list[str] = Field(default_factory=list)
    tables: int = 0
    images: int = 0
    image_only_pages: int = 0
    text_boxes: int = 0
    columns: int = 0
    garbled_ratio: float = 0.0
    contact_only_in_header_footer: bool = False


class ResumeSummary(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    file_name: str
    kind: str = Field(description="pdf or docx, decided by the file's content")
    size_bytes: int
    page_count: int | None
    created_at: datetime


class ResumeOut(ResumeSummary):
    sha256: str
    sections: dict[str, str]
    contact: ContactOut
    skills: list[str]
    years_experience: float | None
    layout: LayoutOut
    text: str


class AnalyzeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    resume_id: uuid.UUID
    target_role: str | None = Field(None, max_length=200, examples=["Backend Engineer"])
    job_description: str | None = Field(None, max_length=30_000)


class SubScoreOut(BaseModel):
    name: str
    score: int
    max: int
    details: str


class RedFlagOut(BaseModel):
    code: str
    severity: str = Field(description="blocker (no score given) or warning (costs points)")
    message: str


class KeywordMatchOut(BaseModel):
    keyword: str
    importance: str = Field(description="must_have or nice_to_have")
    strict: bool = Field(description="the exact words appear, as most ATS match")
    lenient: bool = Field(description="found allowing synonyms, stems and near spellings")
    matched_as: str | None
    jd_sentence: str | None = Field(description="the job description sentence asking for it")


class MissingKeywordOut(BaseModel):
    keyword: str
    importance: str
    jd_sentence: str | None


class KeywordsOut(BaseModel):
    basis: str = Field(description="job_description, target_role or skills_only")
    role: str | None
    strict_match_rate: float
    lenient_match_rate: float
    good_match_rate: float
    must_have: list[KeywordMatchOut]
    nice_to_have: list[KeywordMatchOut]
    matched: list[str]
    missing: list[MissingKeywordOut]


class BulletRewriteOut(BaseModel):
    original: str
    suggested: str


class AnalyzersOut(BaseModel):
    score: str = Field(description="always the rubric, e.g. rubric:ats-2026.11")
    suggestions: str
    summary: str = Field(description="built-in or llm:<model>")
    bullet_rewrites: str


class AnalysisOut(BaseModel):
    id: uuid.UUID
    resume_id: uuid.UUID
    created_at: datetime
    rubric_version: str
    score: int | None = Field(description="0-100; null when red flags block a reliable score")
    scored: bool
    grade: str | None = Field(description="good (80+), fair (60+), needs_work")
    sub_scores: list[SubScoreOut]
    red_flags: list[RedFlagOut]
    keywords: KeywordsOut
    suggestions: list[str]
    ats_view: dict[str, Any] = Field(description="what an ATS would have filed from the resume")
    summary: str
    bullet_rewrites: list[BulletRewriteOut]
    writer: str = Field(description="built-in or llm:<model>: who wrote summary and rewrites")
    writer_note: str | None = None
    analyzers: AnalyzersOut
    target_role: str | None
    free: bool
    credits_charged: int


class LatestResumeOut(BaseModel):
    resume: ResumeOut
    latest_analysis: AnalysisOut | None


class QuotaOut(BaseModel):
    free_per_30_days: int
    free_used: int
    free_remaining: int
    next_free_at: datetime | None = Field(description="when a used free analysis frees up")
    price_after_free: int = Field(description="credits per analysis once the free ones are used")
    balance: int


def analysis_out(analysis: Any) -> AnalysisOut:
    """The API view of a stored analysis (its report plus the row's own fields)."""
    return AnalysisOut.model_validate(
        {
            **analysis.report,
            "id": analysis.id,
            "resume_id": analysis.resume_id,
            "created_at": analysis.created_at,
            "target_role": analysis.target_role,
            "free": analysis.free,
            "credits_charged": analysis.credits_charged,
        }
    )
