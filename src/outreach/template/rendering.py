"""From a template version and one recipient to the exact text that is sent.

Every rendering path goes through :func:`render_email`, which appends the
unsubscribe footer after the template has rendered: a template cannot remove it.
"""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, NamedTuple, Protocol

from outreach.kit.text import control_character
from outreach.template.language import RECIPIENT_FIELDS, SENDER_FIELDS
from outreach.template.sandbox import (
    MAX_SUBJECT_CHARS,
    MAX_VALUE_CHARS,
    TemplateProblem,
    render_source,
)

_NOT_IDENTIFIER = re.compile(r"[^a-z0-9_]+")


class TemplateContent(Protocol):
    subject: str
    body_text: str
    body_html: str | None


class RenderedEmail(NamedTuple):
    # A named tuple: cheaper to build than a frozen dataclass, and a schedule builds 10,000.
    subject: str
    text: str
    html: str | None


@lru_cache(maxsize=1024)
def variable_name(column: str) -> str:
    """A list column as a template variable: ``"Company Size"`` → ``company_size``."""
    name = _NOT_IDENTIFIER.sub("_", column.strip().lower()).strip("_")
    if not name or name[0].isdigit():
        name = f"col_{name}"
    return name


def _present(value: object) -> bool:
    return value is not None and (not isinstance(value, str) or value.strip() != "")


def recipient_context(
    fields: Mapping[str, object], custom_fields: Mapping[str, object] | None = None
) -> dict[str, Any]:
    """The render context of one recipient. Empty cells are left out, so
    ``default(...)`` covers them and nobody is greeted "Hi ,"."""
    context: dict[str, Any] = {}
    for column, value in (custom_fields or {}).items():
        if _present(value):
            context[variable_name(column)] = str(value).strip()
    for name in RECIPIENT_FIELDS:
        value = fields.get(name)
        if _present(value):
            context[name] = str(value).strip()
    if "first_name" not in context and "full_name" in context:
        # Only a full name given by the list says what the first name is.
        context["first_name"] = context["full_name"].split()[0]
    if "full_name" not in context:
        parts = [context.get("first_name"), context.get("last_name")]
        if any(parts):
            context["full_name"] = " ".join(p for p in parts if p)
    return context


def sender_context(profile: Mapping[str, object]) -> dict[str, Any]:
    """``sender.*`` variables: the user's name, target role and resume highlights."""
    sender = {k: str(v).strip() for k, v in profile.items() if k in SENDER_FIELDS and _present(v)}
    if "first_name" not in sender and "name" in sender:
        sender["first_name"] = sender["name"].split()[0]
    return sender


def _footer_text(footer: str, url: str) -> str:
    return footer.replace("{url}", url) if "{url}" in footer else f"{footer} {url}"


def _check_value_sizes(context: Mapping[str, Any]) -> None:
    """One over-long value (a list cell, a sample, a sender field) is refused by name
    before anything is rendered with it."""
    for name, value in context.items():
        _check_value_size(name, value)
    sender = context.get("sender")
    if isinstance(sender, Mapping):
        for field, value in sender.items():
            _check_value_size(f"sender.{field}", value)


def _check_value_size(name: str, value: object) -> None:
    if isinstance(value, str) and len(value) > MAX_VALUE_CHARS:
        raise TemplateProblem(
            f"the value of {name} is longer than {MAX_VALUE_CHARS} characters", field=name
        )


def render_email(
    content: TemplateContent,
    context: Mapping[str, Any],
    *,
    footer: str,
    unsubscribe_url: str,
) -> RenderedEmail:
    """Render subject, text and HTML, then append the unsubscribe footer.

    Raises ``MissingVariables`` (a variable without value or default) or
    ``TemplateProblem`` (a subject that would break a header, output too long).
    """
    _check_value_sizes(context)
    subject = render_source(content.subject, context, field_name="subject").strip()
    if "\r" in subject or "\n" in subject:
        raise TemplateProblem("the subject may not contain line breaks", field="subject")
    if (found := control_character(subject)) is not None:
        raise TemplateProblem(f"the subject may not contain {found}", field="subject")
    if not subject:
        raise TemplateProblem("the subject renders empty", field="subject")
    if len(subject) > MAX_SUBJECT_CHARS:
        raise TemplateProblem(f"the subject is longer than {MAX_SUBJECT_CHARS}", field="subject")
    footer_line = _footer_text(footer, unsubscribe_url)
    text = (
        render_source(content.body_text, context, field_name="body_text").rstrip()
        + "\n\n--\n"
        + footer_line
        + "\n"
    )
    html: str | None = None
    if content.body_html:
        body = render_source(content.body_html, context, html=True, field_name="body_html")
        link = html_lib.escape(unsubscribe_url, quote=True)
        escaped = html_lib.escape(footer.split("{url}")[0].strip())
        html = (
            f'{body}\n<hr>\n<p style="font-size:12px;color:#666">{escaped} '
            f'<a href="{link}">Unsubscribe</a></p>\n'
        )
    return RenderedEmail(subject=subject, text=text, html=html)
