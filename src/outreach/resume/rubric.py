"""The ATS rubric: a deterministic, versioned score with its reasons.

The score comes only from this module, from the stored parse of the file and
the job description or target role: the same inputs always give the same
score, and ``RUBRIC_VERSION`` changes whenever a rule or weight does. An LLM
may write the summary and bullet rewrites; it never sets the score.

Before scoring, the parse itself is checked (garbled glyphs, image-only pages,
two columns read as one, contact details only in a header or footer, length,
missing headings). A *blocker* means the text is not what an ATS would
understand, so no score is given, only the red flags; *warnings* cost points
under formatting.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from outreach.resume.keywords import (
    MUST,
    NICE,
    KeywordMatch,
    ResumeMatcher,
    keywords_from_job_description,
    keywords_from_role,
    match_rate,
)
from outreach.resume.parsing import SECTION_NAMES, bullet_lines
from outreach.resume.vocabulary import find_role, vocabulary

RUBRIC_VERSION = "ats-2026.11"
WEIGHTS = {
    "sections": 20,
    "contact": 15,
    "keywords": 25,
    "quantified_achievements": 15,
    "action_verbs": 10,
    "length_and_formatting": 15,
}
SECTION_POINTS = {
    "experience": 6,
    "education": 5,
    "skills": 5,
    "summary": 2,
    "projects": 1,
    "certifications": 1,
}
CONTACT_POINTS = {"email": 6, "phone": 5, "linkedin": 3, "github_or_website": 1}
GOOD_MATCH_RATE = 0.8  # Jobscan's "good" match rate
_QUANTIFIED = re.compile(
    r"\d|\b(?:one|two|three|four|five|ten|twenty|hundred|thousand|lakh|crore|million|billion)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class RedFlag:
    code: str
    severity: str  # blocker | warning
    message: str


@dataclass(frozen=True)
class SubScore:
    name: str
    score: int
    max: int
    details: str


@dataclass(frozen=True)
class ResumeFacts:
    """What the rubric reads: the stored parse of one resume."""

    text: str
    sections: dict[str, str]
    contact: dict[str, Any]
    skills: list[str]
    years_experience: float | None
    layout: dict[str, Any]


def parse_red_flags(facts: ResumeFacts) -> list[RedFlag]:
    """Problems with how the file reads, checked before any score is given."""
    layout = facts.layout
    flags: list[RedFlag] = []
    words = len(facts.text.split())
    pages = layout.get("page_count") or 0
    if layout.get("garbled_ratio", 0) > 0.05:
        flags.append(
            RedFlag(
                "garbled_text",
                "blocker",
                "much of the text came out as unreadable glyphs (a font without a "
                "Unicode map); export the PDF again or upload the DOCX",
            )
        )
    if pages and layout.get("image_only_pages", 0) * 2 > pages:
        flags.append(
            RedFlag(
                "image_only_pages",
                "blocker",
                "most pages are images without text; an ATS reads nothing there",
            )
        )
    elif layout.get("image_only_pages", 0):
        flags.append(
            RedFlag(
                "image_only_pages",
                "warning",
                f"{layout['image_only_pages']} page(s) are images without text",
            )
        )
    if words < 120:
        flags.append(
            RedFlag(
                "too_little_text",
                "blocker",
                f"only {words} words were read; an ATS would see an almost empty resume",
            )
        )
    if layout.get("columns"):
        flags.append(
            RedFlag(
                "multiple_columns",
                "warning",
                "the layout has columns; many ATS read across them and mix the lines",
            )
        )
    if layout.get("tables"):
        flags.append(
            RedFlag("tables", "warning", "content sits in tables, which many ATS skip or scramble")
        )
    if layout.get("text_boxes"):
        flags.append(
            RedFlag(
                "text_boxes", "warning", "content sits in text boxes, which many ATS do not read"
            )
        )
    if layout.get("images"):
        flags.append(
            RedFlag(
                "images",
                "warning",
                "images, icons or photos carry no text for an ATS (and a photo "
                "invites bias); keep them out",
            )
        )
    if layout.get("contact_only_in_header_footer"):
        flags.append(
            RedFlag(
                "contact_in_header_footer",
                "warning",
                "your email or phone is only in the page header/footer, which many "
                "ATS ignore; put it in the body",
            )
        )
    if pages > 2 or (not pages and words > 1100):
        flags.append(
            RedFlag("too_long", "warning", "more than two pages; keep a resume to one or two")
        )
    found = set(layout.get("headings", []))
    if len(found & {"experience", "education", "skills", "projects", "summary"}) < 2:
        flags.append(
            RedFlag(
                "missing_section_headings",
                "warning",
                "standard headings (Experience, Education, Skills) were not found; "
                "an ATS uses them to file your details",
            )
        )
    return flags


def _sections_score(facts: ResumeFacts) -> SubScore:
    present = [name for name in SECTION_POINTS if facts.sections.get(name, "").strip()]
    score = sum(SECTION_POINTS[name] for name in present)
    missing = [name for name in ("experience", "education", "skills") if name not in present]
    details = f"found: {', '.join(present) or 'none'}"
    if missing:
        details += f"; missing: {', '.join(missing)}"
    return SubScore("sections", score, WEIGHTS["sections"], details)


def _contact_score(facts: ResumeFacts) -> SubScore:
    contact = facts.contact
    have = {
        "email": bool(contact.get("email")),
        "phone": bool(contact.get("phone")),
        "linkedin": bool(contact.get("linkedin")),
        "github_or_website": bool(contact.get("github") or contact.get("website")),
    }
    score = sum(CONTACT_POINTS[name] for name, ok in have.items() if ok)
    missing = [name for name, ok in have.items() if not ok]
    details = "complete" if not missing else f"missing: {', '.join(missing)}"
    return SubScore("contact", score, WEIGHTS["contact"], details)


def _ratio_points(ratio: float, target: float, weight: int) -> int:
    return round(weight * min(ratio / target, 1.0))


def _quantified_score(bullets: list[str]) -> SubScore:
    if not bullets:
        return SubScore(
            "quantified_achievements",
            0,
            WEIGHTS["quantified_achievements"],
            "no achievement lines found under experience or projects",
        )
    with_numbers = sum(1 for line in bullets if _QUANTIFIED.search(line))
    score = _ratio_points(with_numbers / len(bullets), 0.5, WEIGHTS["quantified_achievements"])
    return SubScore(
        "quantified_achievements",
        score,
        WEIGHTS["quantified_achievements"],
        f"{with_numbers} of {len(bullets)} lines carry a number",
    )


def _starts_with_action_verb(line: str) -> bool:
    first = re.sub(r"[^a-z]", "", line.split()[0].lower()) if line.split() else ""
    return first in vocabulary().action_verbs


def _action_verb_score(bullets: list[str]) -> SubScore:
    if not bullets:
        return SubScore("action_verbs", 0, WEIGHTS["action_verbs"], "no achievement lines found")
    strong = sum(1 for line in bullets if _starts_with_action_verb(line))
    score = _ratio_points(strong / len(bullets), 0.7, WEIGHTS["action_verbs"])
    return SubScore(
        "action_verbs",
        score,
        WEIGHTS["action_verbs"],
        f"{strong} of {len(bullets)} lines start with an action verb",
    )


def _formatting_score(facts: ResumeFacts, flags: list[RedFlag]) -> SubScore:
    words = len(facts.text.split())
    score = WEIGHTS["length_and_formatting"]
    notes = [f"{words} words"]
    if words < 300:
        score -= 4
        notes.append("short (aim for 350 to 900 words)")
    elif words > 1100:
        score -= 3
        notes.append("long (aim for 350 to 900 words)")
    warnings = [flag.code for flag in flags if flag.severity == "warning"]
    score -= 2 * len(warnings)
    if warnings:
        notes.append(f"flags: {', '.join(warnings)}")
    return SubScore(
        "length_and_formatting", max(score, 0), WEIGHTS["length_and_formatting"], "; ".join(notes)
    )


@dataclass(frozen=True)
class KeywordReport:
    basis: str  # job_description | target_role | skills_only
    role: str | None
    matches: list[KeywordMatch]

    @property
    def strict_rate(self) -> float:
        return match_rate(self.matches, lenient=False)

    @property
    def lenient_rate(self) -> float:
        return match_rate(self.matches, lenient=True)

    def as_dict(self) -> dict[str, Any]:
        def group(importance: str) -> list[dict[str, Any]]:
            return [m.as_dict() for m in self.matches if m.importance == importance]

        return {
            "basis": self.basis,
            "role": self.role,
            "strict_match_rate": self.strict_rate,
            "lenient_match_rate": self.lenient_rate,
            "good_match_rate": GOOD_MATCH_RATE,
            "must_have": group(MUST),
            "nice_to_have": group(NICE),
            "matched": [m.keyword for m in self.matches if m.lenient],
            "missing": [
                {"keyword": m.keyword, "importance": m.importance, "jd_sentence": m.jd_sentence}
                for m in self.matches
                if not m.lenient
            ],
        }


def match_keywords(
    facts: ResumeFacts, *, target_role: str | None, job_description: str | None
) -> KeywordReport:
    matcher = ResumeMatcher(facts.text, years_experience=facts.years_experience)
    if job_description and job_description.strip():
        keywords = keywords_from_job_description(job_description)
        return KeywordReport("job_description", target_role, [matcher.match(k) for k in keywords])
    role = find_role(target_role) if target_role else None
    if role is not None:
        return KeywordReport(
            "target_role", role.name, [matcher.match(k) for k in keywords_from_role(role)]
        )
    return KeywordReport("skills_only", target_role, [])


def _keyword_score(report: KeywordReport, facts: ResumeFacts) -> SubScore:
    weight = WEIGHTS["keywords"]
    if report.basis == "skills_only" or not report.matches:
        found = len(facts.skills)
        return SubScore(
            "keywords",
            _ratio_points(found / 12, 1.0, weight),
            weight,
            f"{found} recognised skills; add a job description for a real match",
        )
    # Strict matches count fully; lenient-only ones (synonym, stem) count most of the way.
    blended = 0.75 * report.lenient_rate + 0.25 * report.strict_rate
    score = _ratio_points(blended, GOOD_MATCH_RATE, weight)
    return SubScore(
        "keywords",
        score,
        weight,
        f"strict {report.strict_rate:.0%}, lenient {report.lenient_rate:.0%} (80% is good)",
    )


def ats_view(facts: ResumeFacts) -> dict[str, Any]:
    """What an ATS would have filed from this resume."""
    return {
        "name": facts.contact.get("name"),
        "email": facts.contact.get("email"),
        "phone": facts.contact.get("phone"),
        "linkedin": facts.contact.get("linkedin"),
        "github": facts.contact.get("github"),
        "website": facts.contact.get("website"),
        "skills": facts.skills,
        "years_experience": facts.years_experience,
        "sections": {
            name: facts.sections[name][:300] for name in SECTION_NAMES if name in facts.sections
        },
        "page_count": facts.layout.get("page_count"),
        "word_count": len(facts.text.split()),
        "text_preview": facts.text[:1500],
    }


def _suggestions(
    subs: list[SubScore], keywords: KeywordReport, facts: ResumeFacts, bullets: list[str]
) -> list[str]:
    tips: list[str] = []
    by_name = {s.name: s for s in subs}
    for name in ("experience", "education", "skills"):
        if not facts.sections.get(name):
            tips.append(f"Add a clearly titled '{name.title()}' section.")
    if not facts.contact.get("email"):
        tips.append("Put your email address in the body of the resume.")
    if not facts.contact.get("phone"):
        tips.append("Add a phone number with country code (e.g. +91 98765 43210).")
    if not facts.contact.get("linkedin"):
        tips.append("Add your LinkedIn profile URL.")
    missing_must = [m.keyword for m in keywords.matches if m.importance == MUST and not m.lenient]
    if missing_must:
        tips.append(
            "Cover these must-have keywords where true: " + ", ".join(missing_must[:10]) + "."
        )
    lenient_only = [
        m.keyword
        for m in keywords.matches
        if m.lenient and not m.strict and m.matched_as != "years"
    ]
    if lenient_only:
        tips.append(
            "Use the job description's exact words for: "
            + ", ".join(lenient_only[:10])
            + " (many ATS match exact words only)."
        )
    if by_name["quantified_achievements"].score < by_name["quantified_achievements"].max:
        tips.append("Add numbers to more achievements: %, ₹, users, time saved, team size.")
    if by_name["action_verbs"].score < by_name["action_verbs"].max:
        weak = [
            p for p in vocabulary().weak_phrases if any(b.lower().startswith(p) for b in bullets)
        ]
        extra = f" instead of '{weak[0]}'" if weak else ""
        tips.append(f"Start each achievement with an action verb (Built, Led, Reduced){extra}.")
    return tips


def evaluate(
    facts: ResumeFacts, *, target_role: str | None = None, job_description: str | None = None
) -> dict[str, Any]:
    """The full report (no writer output): score, sub-scores, red flags, keywords,
    suggestions and what the ATS saw."""
    flags = parse_red_flags(facts)
    keywords = match_keywords(facts, target_role=target_role, job_description=job_description)
    bullets = bullet_lines(facts.sections)
    subs = [
        _sections_score(facts),
        _contact_score(facts),
        _keyword_score(keywords, facts),
        _quantified_score(bullets),
        _action_verb_score(bullets),
        _formatting_score(facts, flags),
    ]
    blocked = any(flag.severity == "blocker" for flag in flags)
    score = None if blocked else sum(s.score for s in subs)
    return {
        "rubric_version": RUBRIC_VERSION,
        "score": score,
        "scored": not blocked,
        "grade": None
        if score is None
        else ("good" if score >= 80 else "fair" if score >= 60 else "needs_work"),
        "sub_scores": [asdict(s) for s in subs] if not blocked else [],
        "red_flags": [asdict(f) for f in flags],
        "keywords": keywords.as_dict(),
        "suggestions": _suggestions(subs, keywords, facts, bullets),
        "ats_view": ats_view(facts),
    }
