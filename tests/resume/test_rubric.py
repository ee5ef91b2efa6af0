"""The rubric: deterministic, versioned, red flags before scores, strict vs lenient."""

from __future__ import annotations

from datetime import date

from outreach.resume.keywords import keywords_from_job_description, split_sentences
from outreach.resume.parsing import parse_resume
from outreach.resume.rubric import RUBRIC_VERSION, WEIGHTS, ResumeFacts, evaluate
from tests.resume import documents


def _facts(text: str, **layout: object) -> ResumeFacts:
    parsed = parse_resume(text, today=date(2026, 11, 25))
    return ResumeFacts(
        text=text,
        sections=parsed.sections,
        contact=parsed.contact,
        skills=parsed.skills,
        years_experience=parsed.years_experience,
        layout={"page_count": 1, "headings": parsed.headings, **layout},
    )


STANDARD = "\n".join(documents.resume_lines())


def test_weights_make_100() -> None:
    assert sum(WEIGHTS.values()) == 100


def test_same_input_same_report() -> None:
    jd = "Must have Python and Kubernetes. Nice to have: Terraform."
    first = evaluate(_facts(STANDARD), job_description=jd)
    assert first == evaluate(_facts(STANDARD), job_description=jd)
    assert first["rubric_version"] == RUBRIC_VERSION


def test_garbled_text_is_a_blocker_not_a_score() -> None:
    report = evaluate(_facts(STANDARD, garbled_ratio=0.3))
    assert report["score"] is None
    assert report["sub_scores"] == []
    assert report["red_flags"][0]["code"] == "garbled_text"
    assert report["ats_view"]["email"] == "priya.venkat@example.in"


def test_warnings_cost_formatting_points() -> None:
    clean = evaluate(_facts(STANDARD))
    messy = evaluate(_facts(STANDARD, tables=2, images=1, columns=1, page_count=3))
    codes = {f["code"] for f in messy["red_flags"]}
    assert {"tables", "images", "multiple_columns", "too_long"} <= codes
    assert messy["score"] == clean["score"] - 8


def test_missing_headings_are_flagged() -> None:
    text = " ".join(["Built payment systems with Python and SQL for 40 clients."] * 20)
    report = evaluate(_facts(text))
    assert "missing_section_headings" in {f["code"] for f in report["red_flags"]}


def test_jd_sentences_split_into_must_and_nice() -> None:
    jd = (
        "Responsibilities:\nBuild services in Go.\n"
        "Requirements:\n- Python and SQL\n- 3+ years of experience\n"
        "Nice to have:\n- Kafka\n- Experience with Terraform is a plus.\n"
        "We use React on the frontend; Docker knowledge preferred."
    )
    by_name = {k.keyword: k for k in keywords_from_job_description(jd)}
    assert by_name["Python"].importance == "must_have"
    assert by_name["Python"].jd_sentence == "Python and SQL"
    assert by_name["Kafka"].importance == "nice_to_have"
    assert by_name["Terraform"].importance == "nice_to_have"
    assert by_name["Docker"].importance == "nice_to_have"
    assert by_name["3+ years of experience"].min_years == 3
    assert ("Requirements:", None) not in split_sentences(jd)


def test_strict_versus_lenient_matching() -> None:
    jd = "Required: Postgres, design patterns, JS, data modelling and Golang."
    text = STANDARD + "\nSKILLS\nJavaScript, Data Modeling, a design pattern library\n"
    report = evaluate(_facts(text), job_description=jd)
    matches = {m["keyword"]: m for m in report["keywords"]["must_have"]}
    assert matches["Postgres"] == {
        **matches["Postgres"],
        "strict": False,
        "lenient": True,
        "matched_as": "synonym",
    }
    assert matches["design patterns"]["matched_as"] == "stem"
    assert matches["JS"]["matched_as"] == "synonym"
    assert matches["data modelling"]["lenient"] is True
    assert matches["Golang"]["lenient"] is False
    kw = report["keywords"]
    assert kw["strict_match_rate"] < kw["lenient_match_rate"]
    assert any("exact words" in s for s in report["suggestions"])


def test_target_role_uses_the_curated_list() -> None:
    report = evaluate(_facts(STANDARD), target_role="SRE")
    assert report["keywords"]["basis"] == "target_role"
    assert report["keywords"]["role"] == "DevOps Engineer"
    unknown = evaluate(_facts(STANDARD), target_role="Astronaut")
    assert unknown["keywords"]["basis"] == "skills_only"
