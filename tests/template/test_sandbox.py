"""The template language: what it allows, what it refuses, how it renders."""

import pytest

from outreach.template.rendering import (
    recipient_context,
    render_email,
    sender_context,
    variable_name,
)
from outreach.template.sandbox import (
    MissingVariables,
    TemplateProblem,
    check_template,
    render_source,
)


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ '{0.__class__}'.format(1) }}",
        "{{ range(10**7) }}",
        "{% for i in items %}{{ i }}{% endfor %}",
        "{{ 9**9**9 }}",
        "{{ 'x' * 10**9 }}",
        "{{ 1 + 1 }}",
        "{% set a = 'x' %}",
        "{% macro m() %}{% endmacro %}",
        "{% include 'other' %}",
        "{% import 'x' as y %}",
        "{{ cycler }}{{ lipsum() }}",
        "{{ first_name[0] }}",
        "{{ first_name|attr('__class__') }}",
        "{{ first_name|map('upper') }}",
        "{{ sender._secret }}",
        "{{ a ~ b }}",
        "{% raw %}{% endraw %}{{ self }}{{ x(1) }}",
        "{{ first_name < 'b' }}",
        "{{ 12345 }}",
        "{{ x is divisibleby 3 }}",
        "{{ first_name | default('x', true) }}{{ f(**k) }}",
        "{% if x %}unclosed",
    ],
)
def test_escapes_and_expensive_constructs_are_refused(source: str) -> None:
    with pytest.raises(TemplateProblem):
        check_template(source, field_name="body")


def test_allowed_language() -> None:
    source = (
        'Hi {{ first_name | default("there") | title }}, '
        "{% if company %}at {{ company }}{% elif title %}as {{ title|lower }}"
        "{% else %}!{% endif %} "
        "{% if title == 'CTO' and not company or title in 'VP Director' %}x{% endif %}"
        "{{ sender.name }} {{ nickname if nickname is defined else 'friend' }}"
    )
    shape = check_template(source, field_name="body")
    assert shape.variables == ["first_name", "company", "title", "sender.name", "nickname"]
    assert shape.required == ["sender.name"]
    assert shape.fallbacks == {"first_name": "there"}


class TestRender:
    def test_default_covers_missing_and_empty_cells(self) -> None:
        context = recipient_context({"first_name": "   ", "company": ""})
        assert context == {}
        assert render_source('Hi {{ first_name | default("there") }},', context) == "Hi there,"

    def test_missing_variable_without_default_is_reported(self) -> None:
        with pytest.raises(MissingVariables) as caught:
            render_source("Hi {{ first_name }}", {})
        assert caught.value.names == ["first_name"]

    def test_if_on_a_missing_value_is_false(self) -> None:
        assert render_source("{% if company %}at {{ company }}{% endif %}.", {}) == "."

    def test_filters(self) -> None:
        context = {"name": "priya  sharma", "company": "o'reilly media", "x": "  y  "}
        assert render_source("{{ name|first_word|title }}", context) == "Priya"
        assert render_source("{{ company|title }}", context) == "O'reilly Media"
        assert render_source("[{{ x|trim }}]", context) == "[y]"
        assert render_source("{{ company|upper }}", context) == "O'REILLY MEDIA"

    def test_html_autoescapes_values(self) -> None:
        html = render_source("<p>{{ company }}</p>", {"company": "<script>x</script>"}, html=True)
        assert html == "<p>&lt;script&gt;x&lt;/script&gt;</p>"


class Content:
    def __init__(self, subject: str, body_text: str, body_html: str | None = None) -> None:
        self.subject, self.body_text, self.body_html = subject, body_text, body_html


class TestRenderEmail:
    def render(self, content: Content, context: dict) -> object:
        return render_email(
            content, context, footer="Not interested? {url}", unsubscribe_url="https://x.test/u/T"
        )

    def test_footer_is_always_appended(self) -> None:
        email = self.render(Content("Hello", "Body", "<p>Body</p>"), {})
        assert email.text.endswith("Not interested? https://x.test/u/T\n")
        assert 'href="https://x.test/u/T"' in email.html

    def test_a_template_cannot_remove_the_footer(self) -> None:
        email = self.render(Content("Hello", "Body{% if false_flag %}{% endif %}"), {})
        assert "https://x.test/u/T" in email.text

    def test_line_break_from_a_variable_cannot_reach_the_subject(self) -> None:
        with pytest.raises(TemplateProblem) as caught:
            self.render(Content("Hi {{ company }}", "b"), {"company": "Acme\r\nBcc: evil@x.io"})
        assert caught.value.field == "subject"

    def test_output_is_capped(self) -> None:
        with pytest.raises(TemplateProblem):
            self.render(Content("s", "{{ big }}{{ big }}"), {"big": "x" * 60_000})


def test_context_sources() -> None:
    context = recipient_context(
        {"email": "a@b.io", "first_name": "Asha", "last_name": "Rao", "company": "Acme"},
        {"Company Size": "50-200", "2nd contact": "Ravi", "Notes": ""},
    )
    assert context["full_name"] == "Asha Rao"
    assert context["company_size"] == "50-200"
    assert context["col_2nd_contact"] == "Ravi"
    assert "notes" not in context
    only_full = recipient_context({"full_name": "Kiran Kumar"})
    assert only_full["first_name"] == "Kiran"
    sender = sender_context(
        {"name": "Ada Lovelace", "top_skills": "Python, SQL", "years_experience": 0}
    )
    assert sender == {
        "name": "Ada Lovelace",
        "first_name": "Ada",
        "top_skills": "Python, SQL",
        "years_experience": "0",
    }
    assert variable_name("E-mail Address") == "e_mail_address"
