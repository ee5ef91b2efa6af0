"""Writers: who turns facts into prose. The built-in writer is deterministic and
works offline; the LLM writer asks the configured model. Both answer with the
same types, and ``name`` says which one wrote ("built-in" or "llm:<model>").

A writer only writes words. Scores, prices and decisions stay with the caller
(the resume score comes from ``resume.rubric``, never from a model).

To add a kind of writing (cold emails, for the templates issue), add a method to
:class:`Writer` and implement it in both classes below.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Protocol

from pydantic import BaseModel, Field

from outreach.llm.client import ChatClient, Message

BUILT_IN = "built-in"
MAX_BULLETS = 8

_IRREGULAR_PAST = {  # gerund stem → past tense
    "build": "Built",
    "lead": "Led",
    "writ": "Wrote",
    "run": "Ran",
    "driv": "Drove",
    "mak": "Made",
    "teach": "Taught",
    "win": "Won",
    "set": "Set",
    "cut": "Cut",
    "tak": "Took",
    "giv": "Gave",
    "begin": "Began",
    "grow": "Grew",
    "hold": "Held",
    "spend": "Spent",
    "sell": "Sold",
    "bring": "Brought",
    "think": "Thought",
}
_WEAK_START = re.compile(
    r"^(?:was\s+)?(?:responsible\s+for|worked\s+on|helped(?:\s+to)?|assisted(?:\s+in|\s+with)?|"
    r"involved\s+in|participated\s+in|duties\s+included|tasked\s+with|in\s+charge\s+of|handled)\s+",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class ResumeFeedbackRequest:
    """Facts a writer may use. ``score`` is given for context; writers do not change it."""

    score: int | None
    target: str | None  # role or "the job description"
    years_experience: float | None
    skills: list[str]
    strongest: list[str]  # sub-score names, best first
    weakest: list[str]
    missing_keywords: list[str]
    bullets: list[str] = field(default_factory=list)  # lines worth rewriting


class BulletRewrite(BaseModel):
    original: str = Field(max_length=1000)
    suggested: str = Field(max_length=1000)


class ResumeFeedback(BaseModel):
    summary: str = Field(max_length=2000)
    bullet_rewrites: list[BulletRewrite] = Field(default_factory=list, max_length=MAX_BULLETS)


class Writer(Protocol):
    @property
    def name(self) -> str:
        """``"built-in"`` or ``"llm:<model>"``."""

    async def resume_feedback(self, request: ResumeFeedbackRequest) -> ResumeFeedback:
        """A short summary of the analysis and better versions of weak bullets."""


def _past_tense(verb: str) -> str:
    """ "maintaining" → "Maintained", "planning" → "Planned", "building" → "Built".
    Dropping "ing" and adding "ed" also restores a silent e (manag-ing → manag-ed)."""
    word = verb.lower()
    if not word.endswith("ing") or len(word) < 6:
        return verb[:1].upper() + verb[1:]
    stem = word[:-3]
    undoubled = stem[:-1] if len(stem) >= 3 and stem[-1] == stem[-2] else stem
    if stem in _IRREGULAR_PAST or undoubled in _IRREGULAR_PAST:
        return _IRREGULAR_PAST.get(stem) or _IRREGULAR_PAST[undoubled]
    return (stem + "ed").capitalize()


class BuiltInWriter:
    """Deterministic templates: the same facts always give the same words."""

    name = BUILT_IN

    async def resume_feedback(self, request: ResumeFeedbackRequest) -> ResumeFeedback:
        return ResumeFeedback(
            summary=self._summary(request), bullet_rewrites=self._rewrites(request)
        )

    def _summary(self, request: ResumeFeedbackRequest) -> str:
        parts = []
        experience = (
            f"{request.years_experience:g} years of experience"
            if request.years_experience is not None
            else "experience not dated"
        )
        skills = ", ".join(request.skills[:5]) or "no recognised skills"
        parts.append(f"Resume with {experience}; top skills: {skills}.")
        if request.score is None:
            parts.append("It could not be scored reliably: fix the red flags first.")
        else:
            target = f" for {request.target}" if request.target else ""
            parts.append(f"It scores {request.score}/100{target}.")
        if request.strongest:
            parts.append(f"Strongest: {', '.join(request.strongest[:2])}.")
        if request.weakest:
            parts.append(f"Improve first: {', '.join(request.weakest[:2])}.")
        if request.missing_keywords:
            parts.append(f"Missing keywords: {', '.join(request.missing_keywords[:6])}.")
        return " ".join(parts)

    def _rewrites(self, request: ResumeFeedbackRequest) -> list[BulletRewrite]:
        rewrites = []
        for line in request.bullets[:MAX_BULLETS]:
            stripped = _WEAK_START.sub("", line).strip()
            first, _, rest = stripped.partition(" ")
            suggested = f"{_past_tense(first)} {rest}".strip().rstrip(".")
            if not re.search(r"\d", suggested):
                suggested += ", [result in numbers: %, ₹, users, hours saved]"
            if suggested != line:
                rewrites.append(BulletRewrite(original=line, suggested=suggested))
        return rewrites


_SYSTEM = (
    "You are an expert resume coach for job seekers in India and abroad. You write "
    "concise, specific, honest feedback. Never invent employers, numbers or skills: "
    "where a number is needed, write a placeholder in square brackets. Answer with one "
    "JSON object only."
)


class LLMWriter:
    """Asks the configured model; validates its JSON answer against the same types."""

    def __init__(self, client: ChatClient) -> None:
        self.client = client

    @property
    def name(self) -> str:
        return f"llm:{self.client.model}"

    async def resume_feedback(self, request: ResumeFeedbackRequest) -> ResumeFeedback:
        facts = {
            "score_out_of_100": request.score,
            "target": request.target,
            "years_experience": request.years_experience,
            "skills": request.skills[:30],
            "strongest_areas": request.strongest,
            "weakest_areas": request.weakest,
            "missing_keywords": request.missing_keywords[:15],
            "bullets_to_rewrite": request.bullets[:MAX_BULLETS],
        }
        prompt = (
            "Here is an ATS analysis of a resume (the score is final; do not restate or "
            "change it):\n" + json.dumps(facts, ensure_ascii=False, indent=1) + "\n\n"
            'Return {"summary": "<3 to 5 sentences of advice>", "bullet_rewrites": '
            '[{"original": "<a bullet from bullets_to_rewrite, verbatim>", "suggested": '
            '"<stronger version: action verb first, measurable result>"}]}.'
        )
        feedback = await self.client.complete_json(
            [Message("system", _SYSTEM), Message("user", prompt)], ResumeFeedback, max_tokens=1200
        )
        # Keep only rewrites of lines we sent: the model may not invent bullets.
        known = set(request.bullets)
        feedback.bullet_rewrites = [b for b in feedback.bullet_rewrites if b.original in known]
        return feedback
