"""The template language's limits (issue 17 items 1–3): what saves must render, deep or
huge templates are refused at save, and only plain values ever reach the text."""

from __future__ import annotations

import tracemalloc

import pytest

from outreach.template.language import usable_name
from outreach.template.rendering import render_email
from outreach.template.sandbox import (
    MAX_VALUE_CHARS,
    TemplateProblem,
    check_template,
    render_source,
)

CONTEXT = {"first_name": "Ada", "company": "Acme", "a": "x", "sender": {"name": "Sam"}}


@pytest.mark.parametrize(
    "source",
    [
        "{{ first_name|lower(none) }}",
        "{{ first_name|upper('extra') }}",
        "{{ first_name|trim('x') }}",
        "{{ first_name|first_word('x') }}",
        "{{ first_name|title(first_name) }}",
        "{{ first_name|capitalize(1) }}",
        "{{ first_name|default('a', true, 'b', 'c') }}",
        "{{ first_name|default(none) }}",
        "{{ first_name|default('a', 'not a flag') }}",
        "{{ none|upper }}",
        "{% if 'a' in none %}x{% endif %}",
        "{% if 'a' in true %}x{% endif %}",
        "{% if sender in first_name %}x{% endif %}",
        "{% if none in first_name %}x{% endif %}",
        "{% if first_name in sender %}x{% endif %}",
        "{{ first_name is defined }}",
        "{{ none }}",
        "{{ true }}",
        "{{ first_name == company }}",
        "{{ first_name if company }}",
    ],
)
def test_what_would_fail_at_render_is_refused_at_save_naming_the_line(source: str) -> None:
    """Each of these saved with 201 and then answered 500 (TypeError) or printed
    "None"/"True" at render."""
    with pytest.raises(TemplateProblem) as caught:
        check_template("Hello\n" + source, field_name="body_text")
    assert caught.value.field == "body_text"
    assert caught.value.line == 2


@pytest.mark.parametrize(
    "source",
    [
        "{{ " + "(" * 300 + "a" + ")" * 300 + " }}",
        "{{ " + "not " * 400 + "a }}",
        "{% if " + "not " * 400 + "a %}x{% endif %}",
        "{{ a" + "|upper" * 2000 + " }}",
        "{{ sender" + ".name" * 2000 + " }}",
        "{% if a %}" * 300 + "x" + "{% endif %}" * 300,
        "{{ " + " and ".join(["a"] * 3000) + " }}",
        "{{ " + "(" * 30 + "a" + ")" * 30 + " }}",
    ],
)
def test_deep_nesting_is_refused_not_a_recursion_error(source: str) -> None:
    with pytest.raises(TemplateProblem) as caught:
        check_template(source, field_name="body_text")
    assert "nest" in str(caught.value) or "long" in str(caught.value)


def test_a_thousand_expressions_are_refused_at_save() -> None:
    with pytest.raises(TemplateProblem) as caught:
        check_template("{{a}}" * 10_000, field_name="body_text")
    assert "expressions" in str(caught.value)


@pytest.mark.parametrize(
    "source",
    [
        "{{ first_name.upper }}",
        "{{ first_name.upper() }}",
        "{{ company.title }}",
        "{{ self }}",
        "{{ self.blocks }}",
        "{{ sender }}",
        "{{ sender.password }}",
        "{{ sender.name.upper }}",
        "{{ loop }}",
        "{{ caller }}",
        "{{ varargs }}",
        "{% if sender %}x{% endif %}",
        "{{ first_name|default(sender) }}",
    ],
)
def test_only_plain_values_and_sender_fields(source: str) -> None:
    with pytest.raises(TemplateProblem) as caught:
        check_template(source, field_name="subject")
    assert caught.value.line == 1


@pytest.mark.parametrize(
    "source",
    [
        "{{ first_name.upper }}",
        "{{ self }}",
        "{{ sender }}",
        "{{ first_name|lower(none) }}",
        "{{ first_name|trim('x') }}",
        "{% if 'a' in none %}x{% endif %}",
        "{% if sender in first_name %}x{% endif %}",
        "{{ none }}",
        "{{ " + "not " * 400 + "a }}",
    ],
)
def test_a_source_saved_before_these_checks_fails_cleanly_at_render(source: str) -> None:
    """Versions saved by an older release are still rendered: a refusal, never a
    TypeError, a RecursionError or an object's representation in an email."""
    with pytest.raises(TemplateProblem):
        render_source(source, CONTEXT)


def test_allowed_language_still_renders() -> None:
    source = (
        "{{ first_name | default('there') | title }} {{ company or 'your team' }} "
        "{% if company and not title %}{{ company|upper }}{% elif title is defined %}t"
        "{% else %}-{% endif %} {{ sender.name }} {{ first_name|default(company) }} "
        "{{ 'x' if 'A' in company else 'y' }} {{ (first_name) }}"
        "{% if sender.name is defined and sender.name != 'Bob' %}!{% endif %}"
    )
    check_template(source, field_name="body_text")
    assert render_source(source, CONTEXT) == "Ada Acme ACME Sam Ada x Ada!"


class TestOutputBudget:
    @pytest.mark.parametrize(
        ("source", "value", "says"),
        [
            # Refused before rendering: more expressions than a template may have.
            ("{{a}}" * 10_000, "x" * 100_000, "expressions"),
            # Allowed, but 200 × 1,000,000 characters would build 200 MB.
            ("{{a}}" * 200, "x" * 1_000_000, "longer than 100000"),
        ],
    )
    def test_rendering_stops_at_the_cap_without_building_the_whole_text(
        self, source: str, value: str, says: str
    ) -> None:
        """``{{a}}`` ×10,000 with a 100,000-character value built 1 GB before the
        cap was checked; the running budget stops after ~100,000 characters."""
        tracemalloc.start()
        try:
            with pytest.raises(TemplateProblem) as caught:
                render_source(source, {"a": value})
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert says in str(caught.value)
        assert peak < 50 * 1024 * 1024 + len(value), f"peak {peak / 1e6:.0f} MB"

    def test_a_text_at_the_cap_renders(self) -> None:
        text = render_source("{{a}}{{a}}", {"a": "x" * 50_000})
        assert len(text) == 100_000


def test_a_missing_value_in_an_in_test_is_false_on_either_side() -> None:
    """``title in 'CTO VP'`` without a title raised a TypeError (and a 500)."""
    source = (
        "{% if title in 'CTO VP' %}senior{% else %}other{% endif %}"
        "{% if 'x' not in company %}!{% endif %}{{ 'a' if nick in company else 'b' }}"
    )
    assert render_source(source, {}) == "other!b"
    assert render_source(source, {"title": "CTO", "company": "xyz", "nick": "yz"}) == "seniora"


def test_an_over_long_value_is_refused_by_name_before_rendering() -> None:
    class Content:
        subject, body_text, body_html = "Hi", "{{ notes }} {{ sender.top_skills }}", None

    for context, name in (
        ({"notes": "n" * (MAX_VALUE_CHARS + 1)}, "notes"),
        (
            {"notes": "n", "sender": {"top_skills": "s" * (MAX_VALUE_CHARS + 1)}},
            "sender.top_skills",
        ),
    ):
        with pytest.raises(TemplateProblem) as caught:
            render_email(Content(), context, footer="{url}", unsubscribe_url="u")
        assert caught.value.field == name
    email = render_email(
        Content(),
        {"notes": "n" * MAX_VALUE_CHARS, "sender": {"top_skills": "s"}},
        footer="{url}",
        unsubscribe_url="u",
    )
    assert email.text.startswith("n" * MAX_VALUE_CHARS + " s")


@pytest.mark.parametrize(
    ("name", "usable"),
    [
        ("team_size", True),
        ("col_2nd_contact", True),
        ("sender", False),
        ("self", False),
        ("in", False),
        ("none", False),
        ("class", False),
        ("_secret", False),
    ],
)
def test_a_list_column_is_offered_only_when_it_can_be_written(name: str, usable: bool) -> None:
    """``GET /v1/templates/variables`` offers a column by this rule, and the check
    accepts ``{{ name }}`` by the same rule."""
    assert usable_name(name) is usable
    if usable:
        check_template(f"{{{{ {name} }}}}", field_name="body_text")
    else:
        with pytest.raises(TemplateProblem):
            check_template(f"{{{{ {name} }}}}", field_name="body_text")
