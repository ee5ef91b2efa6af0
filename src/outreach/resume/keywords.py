"""Keyword match of a resume against a job description or a target role.

*Strict* is what most ATS do: the keyword, as the job description writes it,
appears as a whole word in the resume. *Lenient* also accepts a synonym from
the curated list ("Postgres" for "PostgreSQL"), the same word stems
("microservice" for "Microservices") or a near spelling ("Data Modelling").
Each keyword is a must-have or a nice-to-have, from the job description's own
words ("required", "nice to have", "bonus", ...) and headings, and keeps the
sentence it came from so a missing keyword can be shown in context.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from rapidfuzz import fuzz

from outreach.resume.vocabulary import Role, scan_skills, term_pattern, vocabulary

MUST, NICE = "must_have", "nice_to_have"
_NICE_CUES = re.compile(
    r"nice[\s-]to[\s-]have|good[\s-]to[\s-]have|preferred|bonus|\bplus\b|desirable|"
    r"advantage|familiarity|exposure to|optional|would be great",
    re.IGNORECASE,
)
_MUST_CUES = re.compile(
    r"must|required|requirement|mandatory|essential|minimum|you have|you will need|"
    r"what you.ll need|qualifications|proficien|strong|solid|hands[\s-]on",
    re.IGNORECASE,
)
_YEARS = re.compile(
    r"(\d{1,2})\s*\+?\s*(?:-|to)?\s*(?:\d{1,2}\s*)?\+?\s*(?:years?|yrs?)", re.IGNORECASE
)
_SUFFIXES = ("ations", "ation", "ments", "ment", "ings", "ing", "ies", "ers", "er", "ed", "es", "s")


@dataclass(frozen=True)
class Keyword:
    keyword: str  # as the job description (or role list) writes it
    canonical: str | None  # the curated skill it names, if any
    importance: str  # must_have | nice_to_have
    jd_sentence: str | None
    min_years: float | None = None


@dataclass(frozen=True)
class KeywordMatch:
    keyword: str
    importance: str
    strict: bool
    lenient: bool
    matched_as: str | None  # exact | synonym | stem | fuzzy | years
    jd_sentence: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def split_sentences(job_description: str) -> list[tuple[str, str | None]]:
    """Sentences with the importance their heading gives them (None: no heading says)."""
    mode: str | None = None
    sentences: list[tuple[str, str | None]] = []
    for line in job_description.splitlines():
        line = re.sub(r"^[\s\u2022\u25cf*\-\u2013>]+", "", line).strip()
        if not line:
            continue
        is_heading = len(line) <= 60 and (line.endswith(":") or len(line.split()) <= 4)
        if is_heading and (_NICE_CUES.search(line) or _MUST_CUES.search(line)):
            mode = NICE if _NICE_CUES.search(line) else MUST
            if line.endswith(":") or not line.rstrip(":").strip():
                continue
        elif is_heading and line.endswith(":"):
            mode = None
            continue
        for sentence in re.split(r"(?<=[.!?;])\s+", line):
            if sentence.strip():
                sentences.append((sentence.strip(), mode))
    return sentences


def _importance(sentence: str, mode: str | None) -> str:
    if _NICE_CUES.search(sentence):
        return NICE
    if _MUST_CUES.search(sentence):
        return MUST
    return mode or MUST


def keywords_from_job_description(job_description: str) -> list[Keyword]:
    """The curated skills a job description names, each with its importance and sentence,
    plus a years-of-experience requirement when it states one."""
    found: dict[str, Keyword] = {}
    years: Keyword | None = None
    for sentence, mode in split_sentences(job_description):
        importance = _importance(sentence, mode)
        for _, name, written in scan_skills(sentence):
            if len(name) == 1:
                continue  # "C" / "R" in prose are too ambiguous
            previous = found.get(name)
            if previous is None or (previous.importance == NICE and importance == MUST):
                found[name] = Keyword(" ".join(written.split()), name, importance, sentence)
        stated = _YEARS.search(sentence)
        if stated and years is None and re.search(r"experience", sentence, re.IGNORECASE):
            n = float(stated.group(1))
            if 0 < n <= 30:
                label = f"{stated.group(1)}+ years of experience"
                years = Keyword(label, None, importance, sentence, min_years=n)
    keywords = sorted(found.values(), key=lambda k: (k.importance != MUST, k.keyword.lower()))
    return ([years] if years else []) + keywords


def keywords_from_role(role: Role) -> list[Keyword]:
    return [Keyword(name, name, MUST, None) for name in role.must] + [
        Keyword(name, name, NICE, None) for name in role.nice
    ]


def stem(word: str) -> str:
    word = word.lower()
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def _stems(text: str) -> list[str]:
    return [stem(w) for w in re.findall(r"[A-Za-z][A-Za-z0-9+#]*", text)]


def _contains(seq: list[str], sub: list[str]) -> bool:
    n = len(sub)
    return n > 0 and any(seq[i : i + n] == sub for i in range(len(seq) - n + 1))


class ResumeMatcher:
    """Matches keywords against one resume's text (its stems are computed once)."""

    def __init__(self, text: str, *, years_experience: float | None) -> None:
        self.text = text
        self.lower = text.lower()
        self.stems = _stems(text)
        self.years = years_experience

    def match(self, keyword: Keyword) -> KeywordMatch:
        how = self._how(keyword)
        return KeywordMatch(
            keyword=keyword.keyword,
            importance=keyword.importance,
            strict=how in ("exact", "years"),
            lenient=how is not None,
            matched_as=how,
            jd_sentence=keyword.jd_sentence,
        )

    def _how(self, keyword: Keyword) -> str | None:
        if keyword.min_years is not None:
            return "years" if self.years is not None and self.years >= keyword.min_years else None
        if term_pattern(keyword.keyword).search(self.text):
            return "exact"
        if keyword.canonical is not None:
            skill = vocabulary().skill(keyword.canonical)
            if any(term_pattern(t).search(self.text) for t in (skill.name, *skill.aliases)):
                return "synonym"
        if _contains(self.stems, _stems(keyword.keyword)):
            return "stem"
        if len(keyword.keyword) >= 6 and fuzz.partial_ratio(
            keyword.keyword.lower(), self.lower, score_cutoff=90
        ):
            return "fuzzy"
        return None


def match_rate(matches: list[KeywordMatch], *, lenient: bool) -> float:
    """Share of keywords found, must-haves weighing twice a nice-to-have (0..1)."""
    total = sum(2 if m.importance == MUST else 1 for m in matches)
    if total == 0:
        return 0.0
    hit = sum(
        (2 if m.importance == MUST else 1) for m in matches if (m.lenient if lenient else m.strict)
    )
    return round(hit / total, 4)
