"""Follow-ups: a campaign's steps after the first email, how they are scheduled, and how
a waiting follow-up gets its time and thread once the step before it is sent.

A follow-up is stored (and charged, 1 credit) when the campaign is scheduled, in status
``waiting``: its time depends on when the previous step actually goes out. The sequence
job (``advance_sequences``) gives it ``previous sent_at + N business days`` (the campaign's
window days), placed under the same window, time zone, daily and company caps as any
email, with the previous message's Message-ID as ``In-Reply-To`` and appended to
``References``, and the previous message's Gmail thread. When the previous step ends
without being sent (failed, cancelled, skipped, unknown) the follow-up is cancelled and
refunded. A reply, a bounce or an unsubscribe cancels and refunds it too (``replies.py``).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from outreach.campaign.audience import Audience, Skip, render_for
from outreach.campaign.schemas import StepIn
from outreach.kit.errors import FieldError, Unprocessable
from outreach.mailbox.inbox import can_read_replies
from outreach.models import Mailbox, User
from outreach.models.campaign import (
    FINAL_EMAIL_STATUSES,
    Campaign,
    CampaignStep,
    EmailStatus,
    ScheduledEmail,
)
from outreach.template.profile import sender_profile
from outreach.template.service import template_service

REPLY_PREFIX = "Re: "


class ReplyDetectionUnavailable(Unprocessable):
    code, title = "reply_detection_unavailable", "This mailbox cannot see replies"


def reply_detection(mailbox: Mailbox) -> str:
    """``available`` for full-mode Gmail; SMTP, outbox and send-only Gmail cannot read."""
    return "available" if can_read_replies(mailbox) else "unavailable"


def reply_subject(first_subject: str) -> str:
    """``Re: `` + the first email's subject (once, however it already starts)."""
    if first_subject[:3].lower() == "re:":
        return first_subject
    return REPLY_PREFIX + first_subject


# -- the steps of a campaign ------------------------------------------------------------


async def campaign_steps(session: AsyncSession, campaign_id: uuid.UUID) -> list[CampaignStep]:
    rows = await session.scalars(
        select(CampaignStep)
        .where(CampaignStep.campaign_id == campaign_id)
        .order_by(CampaignStep.position)
    )
    return list(rows.all())


async def save_steps(
    session: AsyncSession, *, user: User, campaign: Campaign, steps: Sequence[StepIn]
) -> list[CampaignStep]:
    """Replace the campaign's follow-ups (their templates must be the user's)."""
    for step in steps:
        await template_service.get(session, user=user, template_id=step.template_id)
    await session.execute(delete(CampaignStep).where(CampaignStep.campaign_id == campaign.id))
    rows = [
        CampaignStep(
            campaign_id=campaign.id,
            position=position,
            template_id=step.template_id,
            delay_business_days=step.delay_business_days,
            use_own_subject=step.use_own_subject,
        )
        for position, step in enumerate(steps, start=1)
    ]
    session.add_all(rows)
    await session.flush()
    return rows


def check_reply_detection(campaign: Campaign, mailbox: Mailbox, steps: Sequence[object]) -> None:
    """Follow-ups through a mailbox that cannot see replies need the user's explicit yes:
    otherwise someone who already answered would get them."""
    if steps and not can_read_replies(mailbox) and not campaign.followups_without_reply_detection:
        message = (
            f"{mailbox.address} ({mailbox.provider.value}"
            f"{', send-only' if mailbox.mode and mailbox.mode.value == 'send_only' else ''}) "
            "cannot read replies, so follow-ups would reach people who already answered; "
            "connect Gmail in full mode, remove the steps, or set "
            "followups_without_reply_detection to send them anyway"
        )
        raise ReplyDetectionUnavailable(
            message, errors=[FieldError(loc=["body", "steps"], message=message)]
        )


# -- scheduling -------------------------------------------------------------------------


async def render_steps(
    session: AsyncSession,
    *,
    user: User,
    campaign: Campaign,
    steps: Sequence[CampaignStep],
    audience: Audience,
) -> None:
    """Render each step's email for each recipient still to send, into ``audience``;
    a recipient a follow-up cannot be rendered for is moved to the skipped list (before
    planning, so nobody is charged for a sequence that cannot be sent)."""
    sender = await sender_profile(session, user=user)
    renderers = []
    for step in steps:
        template = await template_service.get(session, user=user, template_id=step.template_id)
        version = await template_service.get_version(session, template=template)
        audience.followup_versions.append(version.version)
        renderers.append(
            template_service.renderer(
                version, sender_id=campaign.user_id, sender=sender, campaign_id=campaign.id
            )
        )
    kept, rendered = [], []
    for candidate in audience.to_send:
        emails = [render_for(candidate.recipient, r) for r in renderers]
        skip = next((e for e in emails if isinstance(e, Skip)), None)
        if skip is not None:
            audience.skipped.append(skip)
            continue
        kept.append(candidate)
        rendered.append(emails)
    audience.to_send = kept
    audience.followups = rendered


def followup_rows(
    first_rows: Sequence[dict[str, Any]],
    steps: Sequence[CampaignStep],
    rendered: Sequence[Sequence[Any]],
    *,
    message_id: Any,
) -> list[dict[str, Any]]:
    """The waiting follow-up rows, each linked to the email before it. ``due_at`` is a
    first estimate (the first email's time + the delays); the real one is set when the
    previous step is sent."""
    rows: list[dict[str, Any]] = []
    if not steps:
        return rows
    for first, emails in zip(first_rows, rendered, strict=True):
        previous, due = first, first["due_at"]
        for step, email in zip(steps, emails, strict=True):
            due = due + timedelta(days=step.delay_business_days)
            subject = email.subject if step.use_own_subject else reply_subject(first["subject"])
            row = {
                **first,
                "id": uuid.uuid4(),
                "status": EmailStatus.waiting,
                "due_at": due,
                "subject": subject,
                "body_text": email.text,
                "body_html": email.html,
                "rfc822_message_id": message_id(),
                "step": step.position,
                "previous_email_id": previous["id"],
            }
            rows.append(row)
            previous = row
    return rows


# -- once the previous step is sent ------------------------------------------------------


def add_business_days(
    moment: datetime, days: int, *, weekdays: frozenset[int], zone: ZoneInfo
) -> datetime:
    """``moment`` moved ``days`` business days on (business days: the window's weekdays)."""
    local = moment.astimezone(zone)
    counted = 0
    while counted < days:
        local += timedelta(days=1)
        if local.weekday() in weekdays:
            counted += 1
    return local.astimezone(moment.tzinfo)


async def due_followups(
    session: AsyncSession, *, limit: int = 500
) -> list[tuple[ScheduledEmail, ScheduledEmail]]:
    """Waiting follow-ups whose previous email has reached its final status."""
    previous = aliased(ScheduledEmail)
    rows = await session.execute(
        select(ScheduledEmail, previous)
        .join(previous, previous.id == ScheduledEmail.previous_email_id)
        .where(
            ScheduledEmail.status == EmailStatus.waiting,
            previous.status.in_([s.value for s in FINAL_EMAIL_STATUSES]),
        )
        .order_by(previous.sent_at)
        .limit(limit)
        .with_for_update(of=ScheduledEmail, skip_locked=True)
    )
    return [(followup, before) for followup, before in rows.all()]


def thread_followup(followup: ScheduledEmail, previous: ScheduledEmail) -> None:
    """Answer ``previous``: its Message-ID as In-Reply-To, appended to References, and
    its Gmail thread."""
    followup.in_reply_to = previous.rfc822_message_id
    chain = (previous.reference_ids or "").split()
    followup.reference_ids = " ".join([*chain, previous.rfc822_message_id])
    followup.thread_id = previous.thread_id
