"""Who a campaign goes to, who is left out and why, and what each email says."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, NamedTuple

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.kit.clock import utcnow
from outreach.kit.db import in_batches
from outreach.kit.errors import AppError
from outreach.kit.text import control_character
from outreach.mailbox.mime import InvalidAddress, InvalidHeader, check_recipient_headers
from outreach.models import Recipient, User
from outreach.models.campaign import FINAL_EMAIL_STATUSES, Campaign, EmailStatus, ScheduledEmail
from outreach.models.recipient import VerificationStatus
from outreach.models.template import TemplateVersion
from outreach.recipient.addresses import is_free_mail
from outreach.recipient.suppression import suppression_service
from outreach.template.profile import sender_profile
from outreach.template.rendering import RenderedEmail
from outreach.template.service import (
    InvalidTemplate,
    MissingTemplateVariables,
    template_service,
)


class SkipReason:
    duplicate = "duplicate"
    suppressed = "suppressed"
    undeliverable = "undeliverable"
    missing_variable = "missing_variable"
    recently_emailed = "recently_emailed"
    invalid_header = "invalid_header"  # its subject, name or address cannot be written
    render_failed = "render_failed"  # this recipient's values break the template (too long…)


class Skip(NamedTuple):
    """A recipient left out: the address, why, and where (the list row, the field)."""

    email: str
    reason: str
    detail: str | None = None
    row: int | None = None
    field: str | None = None


class Candidate(NamedTuple):
    """A recipient to send to, with their email's texts (kept flat: one object per
    recipient for the collector, not two)."""

    recipient: RecipientRow
    company_domain: str | None
    subject: str
    text: str
    html: str | None

    @property
    def rendered(self) -> RenderedEmail:
        return RenderedEmail(self.subject, self.text, self.html)


@dataclass
class Audience:
    to_send: list[Candidate] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)
    # Follow-ups: per recipient to send, each step's rendered email; and the versions.
    followups: list[list[Any]] = field(default_factory=list)
    followup_versions: list[int] = field(default_factory=list)

    @property
    def skipped_counts(self) -> dict[str, int]:
        return dict(Counter(skip.reason for skip in self.skipped))


def company_domain(email: str) -> str | None:
    """The company an address belongs to; free-mail addresses belong to none."""
    domain = email.rsplit("@", 1)[-1].lower()
    return None if is_free_mail(domain) else domain


class RecipientRow(NamedTuple):
    """One recipient as a campaign reads it. One object for the garbage collector to
    track where a result row is three (the row, its tuple, the id's UUID): a schedule
    holds 10,000 at once, and enough long-lived objects make it walk the whole heap."""

    id_hex: str  # the recipient's id; ``id`` builds the UUID
    position: int
    email: str
    name: str | None
    first_name: str | None
    last_name: str | None
    company: str | None
    title: str | None
    timezone: str | None
    custom_fields: dict[str, Any] | None
    verification_status: str

    @property
    def id(self) -> uuid.UUID:
        return uuid.UUID(hex=self.id_hex)


_COLUMNS = (
    Recipient.id,
    Recipient.position,
    Recipient.email,
    Recipient.name,
    Recipient.first_name,
    Recipient.last_name,
    Recipient.company,
    Recipient.title,
    Recipient.timezone,
    Recipient.custom_fields,
    Recipient.verification_status,
)


async def campaign_recipients(session: AsyncSession, campaign: Campaign) -> list[RecipientRow]:
    """The campaign's recipients in list order, as light rows (not ORM objects: a
    campaign may have 10,000 of them)."""
    statement = select(*_COLUMNS).where(Recipient.user_id == campaign.user_id)
    if campaign.list_id is not None:
        statement = statement.where(Recipient.list_id == campaign.list_id)
    else:
        ids = [uuid.UUID(i) for i in campaign.recipient_ids]
        statement = statement.where(Recipient.id.in_(ids))
    rows = await session.execute(statement.order_by(Recipient.position, Recipient.id))
    return [RecipientRow(recipient_id.hex, *fields) for recipient_id, *fields in rows]


async def _recently_emailed(
    session: AsyncSession, campaign: Campaign, emails: set[str]
) -> set[str]:
    """Addresses this user emailed (or has in flight) in the last N days, elsewhere."""
    if not emails or campaign.skip_recently_emailed_days == 0:
        return set()
    since = utcnow() - timedelta(days=campaign.skip_recently_emailed_days)
    recent: set[str] = set()
    for batch in in_batches(emails):
        recent.update(
            await session.scalars(
                select(ScheduledEmail.to_address).where(
                    ScheduledEmail.user_id == campaign.user_id,
                    ScheduledEmail.campaign_id != campaign.id,
                    ScheduledEmail.to_address.in_(batch),
                    (ScheduledEmail.sent_at >= since)
                    | ScheduledEmail.status.not_in([s.value for s in FINAL_EMAIL_STATUSES]),
                )
            )
        )
    return recent


def recipient_fields(recipient: Any) -> dict[str, object]:
    return {
        "email": recipient.email,
        "first_name": recipient.first_name,
        "last_name": recipient.last_name,
        "full_name": recipient.name,
        "company": recipient.company,
        "title": recipient.title,
    }


def _left_out(recipient: Any, seen: set[str], suppressed: set[str], recent: set[str]) -> str | None:
    """Why a recipient is left out before anything is rendered, or None."""
    email = recipient.email
    if email in seen:
        return SkipReason.duplicate
    seen.add(email)
    if email in suppressed:
        return SkipReason.suppressed
    if recipient.verification_status == VerificationStatus.undeliverable:
        return SkipReason.undeliverable
    if email in recent:
        return SkipReason.recently_emailed
    return None


# The header each checked field ends up in, named as the user knows it.
_HEADER_FIELDS = {"subject": "subject", "to_name": "name", "to_address": "email"}


def header_skip(recipient: Any, error: AppError) -> Skip | None:
    """This recipient's email cannot be written (a control character in the rendered
    subject or the name, a subject too long, an address no header can carry): skipped,
    naming the row, the field and, for a control character, the list cell holding it.
    None when the error is not about one recipient's headers."""
    locations = [e.loc[-1] for e in error.errors or [] if e.loc]
    fields = [_HEADER_FIELDS[loc] for loc in locations if loc in _HEADER_FIELDS]
    if not fields:
        return None
    cell = next(
        (name for name, value in _cells(recipient) if control_character(value) is not None),
        None,
    )
    detail = str(error) + (f" (from the list column {cell!r})" if cell else "")
    return Skip(
        recipient.email,
        SkipReason.invalid_header,
        detail,
        row=recipient.position,
        field=fields[0],
    )


def _cells(recipient: Any) -> list[tuple[str, str]]:
    standard = [(name, value) for name, value in recipient_fields(recipient).items()]
    custom = list((recipient.custom_fields or {}).items())
    return [(str(name), str(value)) for name, value in [*standard, *custom] if value is not None]


async def build_audience(
    session: AsyncSession, *, campaign: Campaign, user: User, version: TemplateVersion
) -> Audience:
    """Every recipient either rendered and ready to send, or skipped with a reason."""
    recipients = await campaign_recipients(session, campaign)
    addresses = {r.email for r in recipients}
    suppressed = await suppression_service.suppressed_among(
        session, user_id=campaign.user_id, emails=addresses
    )
    recent = await _recently_emailed(session, campaign, addresses)
    sender = await sender_profile(session, user=user)
    audience = Audience()
    render = template_service.renderer(
        version, sender_id=campaign.user_id, sender=sender, campaign_id=campaign.id
    )
    seen: set[str] = set()
    for recipient in recipients:
        email = recipient.email
        reason = _left_out(recipient, seen, suppressed, recent)
        if reason is not None:
            audience.skipped.append(Skip(email, reason, row=recipient.position))
            continue
        rendered_or_skip = render_for(recipient, render)
        if isinstance(rendered_or_skip, Skip):
            audience.skipped.append(rendered_or_skip)
            continue
        audience.to_send.append(Candidate(recipient, company_domain(email), *rendered_or_skip))
    return audience


def render_for(recipient: Any, render: Any) -> RenderedEmail | Skip:
    """One recipient's email rendered and its headers checked, or why it is skipped
    (a missing variable, a header that cannot be written, a render error)."""
    try:
        rendered: RenderedEmail = render(recipient_fields(recipient), recipient.custom_fields)[0]
        check_recipient_headers(
            to_address=recipient.email, to_name=recipient.name, subject=rendered.subject
        )
    except MissingTemplateVariables as exc:
        return Skip(
            recipient.email, SkipReason.missing_variable, exc.detail, row=recipient.position
        )
    except (InvalidHeader, InvalidAddress, InvalidTemplate) as exc:
        skip = header_skip(recipient, exc)
        if skip is None and isinstance(exc, InvalidTemplate):
            skip = Skip(
                recipient.email, SkipReason.render_failed, exc.detail, row=recipient.position
            )
        if skip is None:
            raise
        return skip
    return rendered


@dataclass(frozen=True)
class AudienceOverview:
    """Who a campaign would reach, before any template is rendered."""

    recipients: int  # rows, duplicates included
    unique: int
    by_verification: dict[str, int]  # unique addresses per verification status
    suppressed: int  # unique addresses on the user's (or the global) suppression list


async def audience_overview(session: AsyncSession, campaign: Campaign) -> AudienceOverview:
    """Counts of the campaign's recipients by verification status and suppression."""
    recipients = await campaign_recipients(session, campaign)
    statuses = {r.email: r.verification_status for r in recipients}
    suppressed = await suppression_service.suppressed_among(
        session, user_id=campaign.user_id, emails=set(statuses)
    )
    return AudienceOverview(
        recipients=len(recipients),
        unique=len(statuses),
        by_verification=dict(Counter(statuses.values())),
        suppressed=len(suppressed),
    )


def in_flight_statuses() -> list[str]:
    """Statuses that hold a sending time (a waiting follow-up has none of its own yet)."""
    return [
        s.value for s in EmailStatus if s not in FINAL_EMAIL_STATUSES and s != EmailStatus.waiting
    ]
