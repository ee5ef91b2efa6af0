"""Structuring resume text: sections, contact details (Indian and US), skills, years."""

from __future__ import annotations

from datetime import date

import pytest

from outreach.resume.parsing import normalise_phone, parse_resume
from outreach.resume.service import InvalidFileName, check_file_name
from tests.resume import documents

TODAY = date(2026, 11, 25)


def test_standard_resume() -> None:
    parsed = parse_resume("\n".join(documents.resume_lines()), today=TODAY)
    assert parsed.headings == [
        "summary",
        "experience",
        "education",
        "skills",
        "projects",
        "certifications",
    ]
    assert parsed.contact["name"] == "Priya Venkataraman"
    assert parsed.contact["phone_e164"] == "+919876543210"
    assert parsed.contact["github"] == "github.com/priyav"
    assert parsed.skills[:3] == ["Python", "PostgreSQL", "Microservices"]
    # Jul 2019 - Dec 2021 (30 months) + Jan 2022 - Nov 2026 (59 months)
    assert parsed.years_experience == pytest.approx(7.4, abs=0.05)
    assert any(b.startswith("Responsible for maintaining") for b in parsed.bullets)


@pytest.mark.parametrize(
    ("written", "e164"),
    [
        ("+91 98765 43210", "+919876543210"),
        ("+91-98765-43210", "+919876543210"),
        ("098765 43210", "+919876543210"),
        ("98765 43210", "+919876543210"),
        ("9876543210", "+919876543210"),
        ("080-2345 6789", "+918023456789"),
        ("(415) 555-0134", "+14155550134"),
        ("415-555-0134", "+14155550134"),
        ("+1 415 555 0134", "+14155550134"),
        ("0044 20 7946 0958", "+442079460958"),
    ],
)
def test_phone_formats(written: str, e164: str) -> None:
    assert normalise_phone(written) == e164


def test_inline_headings_and_us_resume() -> None:
    text = (
        "John A. Smith\njohn.smith@example.com | (415) 555-0134\n"
        "Summary: Data analyst with 3 years of experience in SQL and Tableau.\n"
        "Experience\nData Analyst, Acme Corp 06/2021 - 05/2024\n"
        "- Analyzed sales data for 40 stores using SQL and Power BI\n"
        "Education\nB.S. Statistics, UC Davis, 2017 - 2021\n"
        "Skills: SQL, Tableau, Power BI, Excel, R\n"
    )
    parsed = parse_resume(text, today=TODAY)
    assert parsed.contact["name"] == "John A. Smith"
    assert parsed.contact["phone_e164"] == "+14155550134"
    assert parsed.sections["skills"].startswith("SQL, Tableau")
    assert "R" in parsed.skills  # a single letter counts in the skills section only
    assert parsed.years_experience == 3.0


def test_years_fall_back_to_a_stated_number() -> None:
    parsed = parse_resume("Asha Rao\nSummary\n5+ years of experience in QA\n", today=TODAY)
    assert parsed.years_experience == 5.0


def test_overlapping_jobs_are_counted_once() -> None:
    text = "Experience\nA, 2018 - 2020\nB, Jan 2019 - Dec 2019\n"
    assert parse_resume(text, today=TODAY).years_experience == 3.0


def test_short_words_do_not_match_prose() -> None:
    parsed = parse_resume("Experience\nI will go to the ml meetup and c the node\n", today=TODAY)
    assert parsed.skills == []


@pytest.mark.parametrize("name", ["../x.pdf", "a/b.pdf", "a\\b.pdf", "cv\x00.pdf", "cv\n.pdf"])
def test_file_names_with_separators_or_controls_are_refused(name: str) -> None:
    with pytest.raises(InvalidFileName):
        check_file_name(name)


def test_a_plain_file_name_is_kept() -> None:
    assert check_file_name("Priya CV (final).pdf") == "Priya CV (final).pdf"
    assert check_file_name(None) == "resume"
