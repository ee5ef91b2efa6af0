"""Templates generated from the template language's grammar, with random filter
arguments of random kinds and random sample data: saving and rendering never fail
with anything but a refusal (issue 17: "save→render never answers 5xx").

The grammar is the allowed one (names, sender fields, the allowlisted filters and
tests, comparisons, and/or/not, inline and block ifs, brackets, nesting) plus the
near misses a person types: a sender field that does not exist, a filter given
arguments of the wrong kind or number, none/true/false where text is expected.
"""

from __future__ import annotations

from typing import Any

import httpx
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from outreach.template.language import FILTERS, SENDER_FIELDS, TESTS
from outreach.template.rendering import recipient_context, render_email, sender_context
from outreach.template.sandbox import MissingVariables, TemplateProblem, check_template
from tests.conftest import sign_in

NAMES = ["first_name", "company", "title", "full_name", "email", "team_size", "nickname"]
WORDS = "abcXYZ éü ,.'-"

text_constants = st.text(alphabet=WORDS.replace("'", ""), max_size=8).map(lambda s: f"'{s}'")
constants = st.one_of(text_constants, st.sampled_from(["none", "true", "false"]))
sender_refs = st.sampled_from([*SENDER_FIELDS, "password"]).map(lambda f: f"sender.{f}")
variables = st.one_of(st.sampled_from(NAMES), sender_refs)
arguments = st.one_of(constants, variables)


@st.composite
def filter_calls(draw: st.DrawFn) -> str:
    name = draw(st.sampled_from(sorted(FILTERS)))
    args = draw(st.lists(arguments, max_size=4))
    if not args and draw(st.booleans()):
        return f"|{name}"
    return f"|{name}({', '.join(args)})"


def _extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(inner, filter_calls()).map(lambda t: f"{t[0]}{t[1]}"),
        st.tuples(inner, filter_calls()).map(lambda t: f"({t[0]}){t[1]}"),
        st.tuples(inner, st.sampled_from(["==", "!=", "in", "not in"]), inner).map(" ".join),
        st.tuples(inner, st.sampled_from(TESTS), st.booleans()).map(
            lambda t: f"{t[0]} is {'not ' if t[2] else ''}{t[1]}"
        ),
        st.tuples(inner, st.sampled_from(["and", "or"]), inner).map(" ".join),
        inner.map(lambda e: f"not {e}"),
        inner.map(lambda e: f"({e})"),
        st.tuples(inner, inner, inner).map(lambda t: f"{t[0]} if {t[1]} else {t[2]}"),
    )


expressions = st.recursive(st.one_of(variables, constants), _extend, max_leaves=8)
plain_text = st.text(alphabet=WORDS + "\n", max_size=12)


@st.composite
def if_blocks(draw: st.DrawFn, inner: st.SearchStrategy[str]) -> str:
    source = f"{{% if {draw(expressions)} %}}{draw(inner)}"
    for _ in range(draw(st.integers(0, 2))):
        source += f"{{% elif {draw(expressions)} %}}{draw(inner)}"
    if draw(st.booleans()):
        source += f"{{% else %}}{draw(inner)}"
    return source + "{% endif %}"


templates = st.recursive(
    st.one_of(plain_text, expressions.map(lambda e: f"{{{{ {e} }}}}")),
    lambda inner: st.one_of(st.lists(inner, min_size=1, max_size=4).map("".join), if_blocks(inner)),
    max_leaves=8,
)
values = st.one_of(
    st.none(),
    st.text(max_size=20),
    st.text(alphabet="x", min_size=1990, max_size=2010),  # around the value cap
)
samples = st.dictionaries(st.sampled_from(NAMES), values, max_size=6)
senders = st.one_of(
    st.none(), st.dictionaries(st.sampled_from([*SENDER_FIELDS, "password"]), values, max_size=4)
)
LEAKS = ("object at 0x", "<built-in", "TemplateReference", "<bound method", "Undefined")


class Content:
    def __init__(self, subject: str, body_text: str, body_html: str | None) -> None:
        self.subject, self.body_text, self.body_html = subject, body_text, body_html


@hypothesis_settings(max_examples=200, deadline=None)
@given(
    subject=templates,
    body=templates,
    html=st.one_of(st.none(), templates),
    sample=samples,
    sender=senders,
)
def test_what_checks_renders_or_refuses(
    subject: str, body: str, html: str | None, sample: dict[str, Any], sender: Any
) -> None:
    """In process: a source the check accepts renders, or refuses with
    MissingVariables or TemplateProblem; nothing else escapes, nothing leaks."""
    refused: list[str] = []
    for name, source in (("subject", subject), ("body_text", body), ("body_html", html)):
        try:
            if source is not None:
                check_template(source, field_name=name)
        except TemplateProblem as problem:
            refused.append(problem.field)
    if refused:
        assert set(refused) <= {"subject", "body_text", "body_html"}
        return
    context = recipient_context(sample)
    context["sender"] = sender_context(sender or {"name": "Sam Rao"})
    try:
        email = render_email(
            Content(subject, body, html), context, footer="Stop: {url}", unsubscribe_url="u"
        )
    except (MissingVariables, TemplateProblem):
        return
    for part in (email.subject, email.text, email.html or ""):
        assert not any(leak in part for leak in LEAKS), part


@hypothesis_settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    subject=templates,
    body=templates,
    html=st.one_of(st.none(), templates),
    sample=samples,
    sender=senders,
)
async def test_save_then_render_never_answers_5xx(
    client: httpx.AsyncClient,
    subject: str,
    body: str,
    html: str | None,
    sample: dict[str, Any],
    sender: Any,
) -> None:
    """Through the API: 422 at save, or 201 and then 200 or 422 at render."""
    if "X-CSRF-Token" not in client.headers:
        await sign_in(client, "fuzz@example.com", "Sam Rao")
    saved = await client.post(
        "/v1/templates",
        json={
            "name": "fuzz",
            "subject": subject or "s",
            "body_text": body or "b",
            "body_html": html,
        },
    )
    assert saved.status_code in (201, 422), saved.text
    if saved.status_code == 422:
        assert saved.json()["code"] in ("invalid_template", "validation_error"), saved.text
        return
    rendered = await client.post(
        f"/v1/templates/{saved.json()['id']}/render", json={"sample": sample, "sender": sender}
    )
    assert rendered.status_code in (200, 422), rendered.text
    assert rendered.headers["content-type"].startswith(
        "application/json" if rendered.status_code == 200 else "application/problem+json"
    )
    assert not any(leak in rendered.text for leak in LEAKS), rendered.text
