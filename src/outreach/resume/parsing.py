"""From extracted text to a structured resume: sections, contact details, skills
and an estimate of years of experience. Pure functions; deterministic for a
given text and date."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from outreach.resume.vocabulary import scan_skills

SECTION_NAMES = (
    "contact",
    "summary",
    "experience",
    "education",
    "skills",
    "projects",
    "certifications",
)

_HEADINGS: dict[str, tuple[str, ...]] = {
    "contact": (
        "contact",
        "contact information",
        "contact details",
        "personal details",
        "personal information",
    ),
    "summary": (
        "summary",
        "professional summary",
        "profile",
        "profile summary",
        "objective",
        "career objective",
        "about me",
        "professional profile",
        "career summary",
        "executive summary",
    ),
    "experience": (
        "experience",
        "work experience",
        "professional experience",
        "employment history",
        "work history",
        "employment",
        "internships",
        "internship",
        "internship experience",
        "relevant experience",
        "professional background",
    ),
    "education": (
        "education",
        "academic background",
        "academics",
        "educational qualifications",
        "educational qualification",
        "academic qualifications",
        "qualifications",
        "education and training",
        "academic details",
    ),
    "skills": (
        "skills",
        "technical skills",
        "key skills",
        "core competencies",
        "technologies",
        "tech stack",
        "skills and tools",
        "skill set",
        "skillset",
        "technical expertise",
        "areas of expertise",
        "tools and technologies",
        "it skills",
        "core skills",
    ),
    "projects": (
        "projects",
        "academic projects",
        "personal projects",
        "key projects",
        "selected projects",
        "project experience",
    ),
    "certifications": (
        "certifications",
        "certificates",
        "licenses and certifications",
        "certifications and courses",
        "courses",
        "training",
        "certification",
    ),
    "other": (
        "achievements",
        "awards",
        "honors",
        "honours",
        "languages",
        "hobbies",
        "interests",
        "extracurricular activities",
        "publications",
        "volunteering",
        "positions of responsibility",
        "references",
        "declaration",
        "awards and achievements",
        "accomplishments",
        "activities",
        "strengths",
    ),
}
_HEADING_LOOKUP = {alias: name for name, aliases in _HEADINGS.items() for alias in aliases}
_BULLET = re.compile(r"^[\s\u2022\u25cf\u25aa\u25e6\u2023\u2043\u2219\u00b7*\-\u2013\u2014>]+")

EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]{1,64}@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}")
LINKEDIN = re.compile(r"(?:https?://)?(?:[a-z]{2,3}\.)?linkedin\.com/in/[\w\-%]+/?", re.IGNORECASE)
GITHUB = re.compile(r"(?:https?://)?(?:www\.)?github\.com/[\w\-]+/?", re.IGNORECASE)
URL = re.compile(r"(?:https?://|www\.)[^\s|,;()<>]+", re.IGNORECASE)
# +91 98765 43210 · 098765-43210 · (415) 555-0134 · +1 415.555.0134 · 080-2345 6789
PHONE = re.compile(
    r"(?<![\w/.])(?:\+|00)?(?:\(?\+?\d{1,3}\)?[\s.-]*)?(?:\(?\d{2,5}\)?[\s.-]*){1,4}\d{2,5}(?![\w/])"
)

_MONTHS = {
    m: i + 1
    for i, names in enumerate(
        [
            ("jan", "january"),
            ("feb", "february"),
            ("mar", "march"),
            ("apr", "april"),
            ("may",),
            ("jun", "june"),
            ("jul", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("oct", "october"),
            ("nov", "november"),
            ("dec", "december"),
        ]
    )
    for m in names
}
_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
    r"sept?(?:ember)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
_POINT = rf"(?:{_MONTH}\.?\s*'?\s*(?:\d{{4}}|\d{{2}})|\d{{1,2}}\s*[/.-]\s*\d{{4}}|\d{{4}})"
_NOW = r"(?:present|current(?:ly)?|now|till\s+date|to\s+date|today|ongoing)"
DATE_RANGE = re.compile(
    rf"(?P<start>{_POINT})\s*(?:-|\u2013|\u2014|to|till|until)\s*(?P<end>{_POINT}|{_NOW})",
    re.IGNORECASE,
)
_STATED_YEARS = re.compile(
    r"(\d{1,2}(?:\.\d)?)\s*\+?\s*(?:years?|yrs?)\s+(?:of\s+)?(?:\w+\s+){0,3}experience",
    re.IGNORECASE,
)


@dataclass
class ParsedResume:
    sections: dict[str, str]
    headings: list[str]
    contact: dict[str, Any]
    skills: list[str]
    years_experience: float | None
    bullets: list[str] = field(default_factory=list)


def _heading_of(line: str) -> tuple[str, str] | None:
    """(section, rest of line) when the line is a section heading ("Skills: Python, SQL")."""
    stripped = _BULLET.sub("", line).strip()
    if not stripped or len(stripped) > 80:
        return None
    head, _, rest = stripped.partition(":")
    key = re.sub(r"[^a-z ]+", " ", head.lower().replace("&", " and ")).split()
    name = _HEADING_LOOKUP.get(" ".join(key))
    if name is None or len(key) > 5:
        return None
    return name, rest.strip()


def split_sections(text: str) -> tuple[dict[str, str], list[str]]:
    """Section name → its text, and the headings in the order found. Lines before
    the first heading are the contact block."""
    sections: dict[str, list[str]] = {"contact": []}
    headings: list[str] = []
    current = "contact"
    for line in text.splitlines():
        heading = _heading_of(line)
        if heading is not None:
            current, rest = heading
            headings.append(current)
            sections.setdefault(current, [])
            if rest:
                sections[current].append(rest)
            continue
        if line.strip():
            sections.setdefault(current, []).append(line.strip())
    return {name: "\n".join(lines) for name, lines in sections.items() if lines}, headings


def normalise_phone(raw: str) -> str | None:
    """E.164 for Indian and North American numbers when the digits say which, else None."""
    digits = re.sub(r"\D", "", raw)
    if raw.strip().startswith("00"):
        digits = digits[2:]
        raw = "+" + raw.strip()[2:]
    if raw.strip().startswith("+") or raw.strip().startswith("(+"):
        return f"+{digits}" if 8 <= len(digits) <= 15 else None
    if len(digits) == 12 and digits.startswith("91") and digits[2] in "6789":
        return f"+{digits}"
    if len(digits) == 11 and digits.startswith("0"):
        return f"+91{digits[1:]}"  # 0 98765 43210, 080 2345 6789: Indian trunk prefix
    if len(digits) == 10:
        grouped_us = re.fullmatch(r"\(?\d{3}\)?[\s.-]?\d{3}[\s.-]?\d{4}", raw.strip())
        if digits[0] in "6789" and not (grouped_us and "(" in raw):
            return f"+91{digits}"
        if grouped_us:
            return f"+1{digits}"
    if len(digits) == 11 and digits.startswith("1"):
        return f"+{digits}"
    return None


def find_phone(text: str) -> tuple[str | None, str | None]:
    for match in PHONE.finditer(text):
        raw = match.group(0).strip()
        digits = re.sub(r"\D", "", raw)
        if not 10 <= len(digits) <= 13 or DATE_RANGE.fullmatch(raw):
            continue
        if re.fullmatch(r"(?:19|20)\d{2}\s*[-\u2013]\s*(?:19|20)\d{2}", raw):
            continue  # a year range, not a number
        return raw, normalise_phone(raw)
    return None, None


def _find_name(contact_block: str) -> str | None:
    for line in contact_block.splitlines()[:5]:
        candidate = line.split("|")[0].strip()
        if (
            EMAIL.search(candidate)
            or URL.search(candidate)
            or any(ch.isdigit() for ch in candidate)
        ):
            continue
        words = candidate.replace(".", ". ").split()
        if 1 < len(words) <= 5 and all(
            (w[0].isalpha() and w[0].isupper()) or w.isupper() for w in words
        ):
            return " ".join(candidate.split())
    return None


def find_contact(text: str, contact_block: str) -> dict[str, Any]:
    email = EMAIL.search(text)
    linkedin = LINKEDIN.search(text)
    github = GITHUB.search(text)
    phone, phone_e164 = find_phone(contact_block) if contact_block else (None, None)
    if phone is None:
        phone, phone_e164 = find_phone(text)
    others = [
        url
        for url in URL.findall(text)
        if "linkedin.com" not in url.lower() and "github.com" not in url.lower()
    ]
    return {
        "name": _find_name(contact_block),
        "email": email.group(0).lower() if email else None,
        "phone": phone,
        "phone_e164": phone_e164,
        "linkedin": linkedin.group(0).rstrip("/") if linkedin else None,
        "github": github.group(0).rstrip("/") if github else None,
        "website": others[0].rstrip(".") if others else None,
    }


def find_skills(text: str, skills_section: str = "") -> list[str]:
    """Known skills mentioned anywhere, in order of first mention. Single letters
    ("C", "R") count only in the skills section."""
    first: dict[str, int] = {}
    for position, skill, _ in scan_skills(text):
        if len(skill) > 1:
            first.setdefault(skill, position)
    for position, skill, _ in scan_skills(skills_section):
        if len(skill) == 1:
            first.setdefault(skill, len(text) + position)
    return sorted(first, key=first.__getitem__)


def _month_index(point: str, *, end: bool, today: date) -> int | None:
    point = point.strip().lower()
    if re.fullmatch(_NOW, point, re.IGNORECASE):
        return today.year * 12 + today.month - 1
    numeric = re.fullmatch(r"(\d{1,2})\s*[/.-]\s*(\d{4})", point)
    if numeric:
        month, year = int(numeric.group(1)), int(numeric.group(2))
        return year * 12 + month - 1 if 1 <= month <= 12 else None
    named = re.fullmatch(r"([a-z]+)\.?\s*'?\s*(\d{4}|\d{2})", point)
    if named and named.group(1) in _MONTHS:
        year = int(named.group(2))
        year = year + 2000 if year < 100 and year <= today.year % 100 else year
        year = year + 1900 if year < 100 else year
        return year * 12 + _MONTHS[named.group(1)] - 1
    if re.fullmatch(r"\d{4}", point):
        return int(point) * 12 + (11 if end else 0)
    return None


def estimate_years(experience_text: str, full_text: str, *, today: date) -> float | None:
    """Years covered by the date ranges of the experience section (overlaps counted
    once), else a "5+ years of experience" statement, else None."""
    spans: list[tuple[int, int]] = []
    now = today.year * 12 + today.month - 1
    for match in DATE_RANGE.finditer(experience_text):
        start = _month_index(match.group("start"), end=False, today=today)
        end = _month_index(match.group("end"), end=True, today=today)
        if start is None or end is None or end < start or start < 1950 * 12:
            continue
        spans.append((start, min(end, now) + 1))
    if spans:
        spans.sort()
        months, (current_start, current_end) = 0, spans[0]
        for start, end in spans[1:]:
            if start > current_end:
                months += current_end - current_start
                current_start, current_end = start, end
            else:
                current_end = max(current_end, end)
        months += current_end - current_start
        return round(months / 12, 1)
    stated = _STATED_YEARS.search(full_text)
    return float(stated.group(1)) if stated else None


def bullet_lines(sections: dict[str, str]) -> list[str]:
    """Achievement lines of experience and projects: at least five words, not a
    title/date line."""
    lines: list[str] = []
    for name in ("experience", "projects"):
        for line in sections.get(name, "").splitlines():
            line = _BULLET.sub("", line).strip()
            if len(line.split()) >= 5 and not DATE_RANGE.search(line):
                lines.append(line)
    return lines


def parse_resume(text: str, *, header_footer_text: str = "", today: date) -> ParsedResume:
    """Structure the text of a resume (header/footer text is searched for contact details)."""
    sections, headings = split_sections(text)
    contact_block = sections.get("contact", "")
    search_text = f"{text}\n{header_footer_text}" if header_footer_text else text
    contact = find_contact(search_text, f"{header_footer_text}\n{contact_block}".strip())
    skills = find_skills(text, sections.get("skills", ""))
    years = estimate_years(sections.get("experience", ""), text, today=today)
    return ParsedResume(
        sections=sections,
        headings=headings,
        contact=contact,
        skills=skills,
        years_experience=years,
        bullets=bullet_lines(sections),
    )
