"""Templates: save (checked against the allowlist), version, render, delete."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.config import get_settings
from outreach.kit.clock import utcnow
from outreach.kit.errors import FieldError, NotFound, Unprocessable
from outreach.kit.pagination import Pagination, paginate
from outreach.kit.text import control_character
from outreach.kit.unsubscribe import unsubscribe_tokens, unsubscribe_url
from outreach.models import Template, TemplateVersion, User
from outreach.template.rendering import (
    RenderedEmail,
    TemplateContent,
    recipient_context,
    render_email,
    sender_context,
)
from outreach.template.sandbox import (
    MissingVariables,
    TemplateProblem,
    TemplateShape,
    check_template,
)
from outreach.template.schemas import TemplateCreate, TemplateUpdate

SAMPLE_RECIPIENT = {
    "email": "priya.sharma@example.com",
    "first_name": "Priya",
    "last_name": "Sharma",
    "company": "Acme Analytics",
    "title": "Engineering Manager",
}


class TemplateNotFound(NotFound):
    code, title = "template_not_found", "Template not found"


class InvalidTemplate(Unprocessable):
    code, title = "invalid_template", "The template is not allowed"


class MissingTemplateVariables(Unprocessable):
    code, title = "missing_variables", "A variable has no value and no default"


def _problem(exc: TemplateProblem) -> FieldError:
    message = f"line {exc.line}: {exc}" if exc.line else str(exc)
    return FieldError(loc=["body", exc.field], message=message, type="template")


def check_content(subject: str, body_text: str, body_html: str | None) -> TemplateShape:
    """Check all three parts; every problem is reported at once, per field."""
    shapes: list[TemplateShape] = []
    errors: list[FieldError] = []
    for field_name, source in (
        ("subject", subject),
        ("body_text", body_text),
        ("body_html", body_html),
    ):
        if source is None:
            continue
        if field_name == "subject" and ("\r" in source or "\n" in source):
            errors.append(
                FieldError(
                    loc=["body", "subject"], message="line breaks are not allowed in a subject"
                )
            )
            continue
        if field_name == "subject" and (found := control_character(source)) is not None:
            errors.append(
                FieldError(loc=["body", "subject"], message=f"{found} is not allowed in a subject")
            )
            continue
        try:
            shapes.append(check_template(source, field_name=field_name))
        except TemplateProblem as exc:
            errors.append(_problem(exc))
    if errors:
        raise InvalidTemplate("; ".join(e.message for e in errors), errors=errors)
    variables: list[str] = []
    required: list[str] = []
    fallbacks: dict[str, str] = {}
    for shape in shapes:
        variables += [v for v in shape.variables if v not in variables]
        required += [v for v in shape.required if v not in required]
        fallbacks |= shape.fallbacks
    return TemplateShape(variables=variables, required=required, fallbacks=fallbacks)


class TemplateService:
    async def create(
        self, session: AsyncSession, *, user: User, data: TemplateCreate, source: str = "manual"
    ) -> tuple[Template, TemplateVersion]:
        """Save a new template after checking it against the allowlist."""
        shape = check_content(data.subject, data.body_text, data.body_html)
        template = Template(user_id=user.id, name=data.name, current_version=1, source=source)
        session.add(template)
        await session.flush()
        version = self._version(template, 1, data.subject, data.body_text, data.body_html, shape)
        session.add(version)
        await session.flush()
        return template, version

    def _version(
        self,
        template: Template,
        number: int,
        subject: str,
        body_text: str,
        body_html: str | None,
        shape: TemplateShape,
    ) -> TemplateVersion:
        return TemplateVersion(
            template_id=template.id,
            version=number,
            subject=subject,
            body_text=body_text,
            body_html=body_html,
            variables=shape.variables,
            required_variables=shape.required,
        )

    async def get(self, session: AsyncSession, *, user: User, template_id: uuid.UUID) -> Template:
        """The user's template; another user's or a deleted one is 404."""
        template = await session.scalar(
            select(Template).where(
                Template.id == template_id,
                Template.user_id == user.id,
                Template.deleted_at.is_(None),
            )
        )
        if template is None:
            raise TemplateNotFound(f"no template {template_id}")
        return template

    async def get_version(
        self, session: AsyncSession, *, template: Template, version: int | None = None
    ) -> TemplateVersion:
        number = version or template.current_version
        found = await session.scalar(
            select(TemplateVersion).where(
                TemplateVersion.template_id == template.id, TemplateVersion.version == number
            )
        )
        if found is None:
            raise TemplateNotFound(f"template {template.id} has no version {number}")
        return found

    def variables_by_part(self, version: TemplateVersion) -> dict[str, list[str]]:
        """The names each part of a saved version uses (``subject``, ``body_text``,
        ``body_html``), e.g. to see whether the subject is personalised."""
        parts = {
            "subject": version.subject,
            "body_text": version.body_text,
            "body_html": version.body_html,
        }
        found: dict[str, list[str]] = {}
        for name, source in parts.items():
            if source is None:
                continue
            try:
                found[name] = check_template(source, field_name=name).variables
            except TemplateProblem:
                continue  # saved by an older release, before a check it now fails
        return found

    async def count(self, session: AsyncSession, *, user: User) -> int:
        """How many templates the user has (deleted ones not counted)."""
        found = await session.scalar(
            select(func.count())
            .select_from(Template)
            .where(Template.user_id == user.id, Template.deleted_at.is_(None))
        )
        return int(found or 0)

    async def list(
        self, session: AsyncSession, *, user: User, pagination: Pagination
    ) -> tuple[list[tuple[Template, TemplateVersion]], str | None]:
        statement = select(Template).where(
            Template.user_id == user.id, Template.deleted_at.is_(None)
        )
        templates, cursor = await paginate(
            session, statement, pagination, created_at=Template.created_at, id_column=Template.id
        )
        return [(t, await self.get_version(session, template=t)) for t in templates], cursor

    async def update(
        self, session: AsyncSession, *, template: Template, data: TemplateUpdate
    ) -> TemplateVersion:
        """Rename, and/or save the new content as the next version (earlier versions,
        which scheduled emails point at, are kept unchanged)."""
        current = await self.get_version(session, template=template)
        if data.name is not None:
            template.name = data.name
        fields = data.model_fields_set
        subject = data.subject if data.subject is not None else current.subject
        body_text = data.body_text if data.body_text is not None else current.body_text
        body_html = data.body_html if "body_html" in fields else current.body_html
        changed = (subject, body_text, body_html) != (
            current.subject,
            current.body_text,
            current.body_html,
        )
        template.updated_at = utcnow()
        if not changed:
            await session.flush()
            return current
        shape = check_content(subject, body_text, body_html)
        template.current_version += 1
        version = self._version(
            template, template.current_version, subject, body_text, body_html, shape
        )
        session.add(version)
        await session.flush()
        return version

    async def delete(self, session: AsyncSession, *, template: Template) -> None:
        """Hide the template; its versions stay for emails already scheduled from it."""
        template.deleted_at = utcnow()
        await session.flush()

    def renderer(
        self,
        version: TemplateContent,
        *,
        sender_id: uuid.UUID,
        sender: Mapping[str, object],
        campaign_id: uuid.UUID | None = None,
    ) -> Callable[
        [Mapping[str, object], Mapping[str, object] | None], tuple[RenderedEmail, dict[str, Any]]
    ]:
        """A function rendering ``version`` for one recipient after another, exactly as
        sent (footer included); what every email shares is worked out once.

        It raises :class:`MissingTemplateVariables` naming what is missing."""
        settings = get_settings()
        secret = settings.secret_key.get_secret_value()
        sender_values = sender_context(sender)
        token_for = unsubscribe_tokens(secret=secret, sender_id=sender_id, campaign_id=campaign_id)

        def render(
            recipient: Mapping[str, object], custom_fields: Mapping[str, object] | None
        ) -> tuple[RenderedEmail, dict[str, Any]]:
            context = recipient_context(recipient, custom_fields)
            context["sender"] = sender_values
            token = token_for(str(recipient.get("email") or ""))
            try:
                rendered = render_email(
                    version,
                    context,
                    footer=settings.unsubscribe_footer_text,
                    unsubscribe_url=unsubscribe_url(settings.base_url, token),
                )
            except MissingVariables as exc:
                raise MissingTemplateVariables(
                    f"no value and no default for {', '.join(exc.names)}",
                    missing=exc.names,
                    errors=[
                        FieldError(loc=["sample", n], message="no value and no default")
                        for n in exc.names
                    ],
                ) from exc
            except TemplateProblem as exc:
                raise InvalidTemplate(str(exc), errors=[_problem(exc)]) from exc
            return rendered, context

        return render

    def render_for(
        self,
        version: TemplateContent,
        *,
        sender_id: uuid.UUID,
        recipient: Mapping[str, object],
        custom_fields: Mapping[str, object] | None,
        sender: Mapping[str, object],
        campaign_id: uuid.UUID | None = None,
    ) -> tuple[RenderedEmail, dict[str, Any]]:
        """Render one email exactly as it would be sent, footer included."""
        render = self.renderer(version, sender_id=sender_id, sender=sender, campaign_id=campaign_id)
        return render(recipient, custom_fields)

    def sample_render(
        self,
        version: TemplateVersion,
        *,
        user: User,
        sample: Mapping[str, str | None],
        sender: Mapping[str, object],
    ) -> tuple[RenderedEmail, dict[str, Any]]:
        """Render against sample data: built-in values for what ``sample`` leaves out."""
        recipient = {
            **SAMPLE_RECIPIENT,
            **{k: v for k, v in sample.items() if k in SAMPLE_RECIPIENT},
        }
        custom = {k: v for k, v in sample.items() if k not in SAMPLE_RECIPIENT}
        return self.render_for(
            version, sender_id=user.id, recipient=recipient, custom_fields=custom, sender=sender
        )


template_service = TemplateService()
