"""Response shapes of campaigns: counts, preview, stats, the test send."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import cast

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from outreach.campaign import tracking
from outreach.campaign.audience import campaign_recipients, header_skip, recipient_fields
from outreach.campaign.followups import reply_detection
from outreach.campaign.planning import emails_per_day
from outreach.campaign.schemas import (
    CampaignOut,
    EmailCounts,
    EmailError,
    PreviewEmail,
    PreviewOut,
    ProjectedSchedule,
    SkippedRecipient,
    StatsOut,
    StepOut,
    TestSendOut,
)
from outreach.campaign.sending import build_mime, resume_attachment
from outreach.campaign.service import NothingToSend, campaign_service, campaign_timezone
from outreach.config import get_settings
from outreach.credits.pricing import pricing_from_settings
from outreach.credits.service import credit_service
from outreach.kit.clock import utcnow
from outreach.kit.errors import FieldError, Unprocessable
from outreach.mailbox.mime import make_message_id
from outreach.mailbox.service import mailbox_service
from outreach.models import Mailbox, User
from outreach.models.campaign import (
    FINAL_EMAIL_STATUSES,
    Campaign,
    CampaignStep,
    EmailStatus,
    ScheduledEmail,
)
from outreach.models.suppression import Suppression
from outreach.template.profile import sender_profile
from outreach.template.service import InvalidTemplate, template_service


class RecipientNotWritable(Unprocessable):
    code, title = "recipient_not_writable", "This recipient's email cannot be written"


def _out(
    campaign: Campaign,
    counts: EmailCounts,
    last_error: EmailError | None,
    steps: list[CampaignStep],
    mailbox: Mailbox | None,
) -> CampaignOut:
    fields = set(CampaignOut.model_fields) - {"counts", "last_error", "steps", "reply_detection"}
    return CampaignOut(
        **{name: getattr(campaign, name) for name in fields},
        counts=counts,
        last_error=last_error,
        steps=[StepOut.model_validate(step, from_attributes=True) for step in steps],
        reply_detection="unavailable" if mailbox is None else reply_detection(mailbox),
    )


async def campaigns_out(session: AsyncSession, campaigns: Sequence[Campaign]) -> list[CampaignOut]:
    ids = [c.id for c in campaigns]
    counts = await campaign_service.counts(session, ids)
    errors = await last_errors(session, ids)
    steps: dict[uuid.UUID, list[CampaignStep]] = {cid: [] for cid in ids}
    for step in await session.scalars(
        select(CampaignStep)
        .where(CampaignStep.campaign_id.in_(ids))
        .order_by(CampaignStep.position)
    ):
        steps[step.campaign_id].append(step)
    mailboxes = {
        m.id: m
        for m in await session.scalars(
            select(Mailbox).where(Mailbox.id.in_({c.mailbox_id for c in campaigns}))
        )
    }
    return [
        _out(c, counts[c.id], errors.get(c.id), steps[c.id], mailboxes.get(c.mailbox_id))
        for c in campaigns
    ]


async def last_errors(
    session: AsyncSession, campaign_ids: list[uuid.UUID]
) -> dict[uuid.UUID, EmailError]:
    """The latest error of each campaign's emails (failed, or retried), in one query.
    A cancelled email is left out: it was stopped on purpose (a reply, a bounce or an
    unsubscribe ending the sequence, the user, an earlier step's own failure), and its
    reason stays on the email itself."""
    latest = (
        select(
            ScheduledEmail,
            func.row_number()
            .over(
                partition_by=ScheduledEmail.campaign_id,
                order_by=(ScheduledEmail.updated_at.desc(), ScheduledEmail.id),
            )
            .label("rank"),
        )
        .where(
            ScheduledEmail.campaign_id.in_(campaign_ids),
            ScheduledEmail.last_error.is_not(None),
            ScheduledEmail.status.not_in([EmailStatus.sent, EmailStatus.cancelled]),
        )
        .subquery()
    )
    email = aliased(ScheduledEmail, latest)
    rows = await session.scalars(select(email).where(latest.c.rank == 1))
    return {
        e.campaign_id: EmailError(
            email_id=e.id,
            to_address=e.to_address,
            status=e.status,
            error=e.last_error or "",
            at=e.updated_at,
            retry_at=e.next_attempt_at if e.status not in FINAL_EMAIL_STATUSES else None,
        )
        for e in rows
    }


async def campaign_out(session: AsyncSession, campaign: Campaign) -> CampaignOut:
    return (await campaigns_out(session, [campaign]))[0]


def _preview_email(email: ScheduledEmail, mailbox: Mailbox) -> PreviewEmail:
    return PreviewEmail(
        to=email.to_address,
        headers=build_mime(email, mailbox).headers(),
        subject=email.subject,
        text=email.body_text,
        html=email.body_html,
        due_at=email.due_at,
    )


async def preview(
    session: AsyncSession, *, user: User, campaign: Campaign, limit: int
) -> PreviewOut:
    """What scheduling would do, without doing it."""
    mailbox, audience, plan, _ = await campaign_service.prepare(
        session, user=user, campaign=campaign
    )
    domain = mailbox.address.rsplit("@", 1)[-1]
    emails = [
        _preview_email(
            ScheduledEmail(
                campaign_id=campaign.id,
                user_id=user.id,
                to_address=c.recipient.email,
                to_name=c.recipient.name,
                subject=c.subject,
                body_text=c.text,
                body_html=c.html,
                rfc822_message_id=make_message_id(domain),
                due_at=plan.due_at[index],
            ),
            mailbox,
        )
        for index, c in enumerate(audience.to_send[:limit])
    ]
    timezone = campaign_timezone(campaign, mailbox)
    return PreviewOut(
        to_send=len(audience.to_send),
        skipped=audience.skipped_counts,
        skipped_examples=[SkippedRecipient(**skip._asdict()) for skip in audience.skipped[:50]],
        deferred_by_company_cap=[
            audience.to_send[cast(int, k)].recipient.email for k in plan.deferred_by_company_cap
        ],
        credit_cost=len(audience.to_send)
        * (1 + len(audience.followup_versions))
        * pricing_from_settings(get_settings()).scheduled_email,
        credit_balance=await credit_service.get_balance(session, user_id=user.id),
        schedule=ProjectedSchedule(
            first_send_at=plan.first,
            last_send_at=plan.last,
            emails_per_day=emails_per_day(plan.due_at.values(), timezone),
            timezone=str(timezone),
        ),
        emails=emails,
    )


async def test_send(session: AsyncSession, *, user: User, campaign: Campaign) -> TestSendOut:
    """One rendered email (the first recipient's) to the mailbox's own address; free."""
    mailbox = await mailbox_service.get_mailbox(session, user=user, mailbox_id=campaign.mailbox_id)
    template = await template_service.get(session, user=user, template_id=campaign.template_id)
    version = await template_service.get_version(session, template=template)
    recipients = await campaign_recipients(session, campaign)
    if not recipients:
        raise NothingToSend("the campaign has no recipients to base a test on")
    try:
        rendered, _ = template_service.render_for(
            version,
            sender_id=user.id,
            recipient=recipient_fields(recipients[0]),
            custom_fields=recipients[0].custom_fields,
            sender=await sender_profile(session, user=user),
            campaign_id=campaign.id,
        )
    except InvalidTemplate as exc:
        skip = header_skip(recipients[0], exc)
        if skip is None:
            raise
        raise RecipientNotWritable(
            f"row {skip.row} ({skip.email}): {skip.detail}",
            errors=[
                FieldError(
                    loc=["recipients", skip.row or 0, skip.field or ""], message=skip.detail or ""
                )
            ],
        ) from exc
    email = ScheduledEmail(
        campaign_id=campaign.id,
        user_id=user.id,
        to_address=mailbox.address,
        to_name=None,
        subject=f"[Test] {rendered.subject}",
        body_text=rendered.text,
        body_html=rendered.html,
        rfc822_message_id=make_message_id(mailbox.address.rsplit("@", 1)[-1]),
        due_at=utcnow(),
    )
    attachment = None
    if campaign.attach_resume:
        resume_id = await campaign_service.resume_to_attach(session, user=user)
        attachment = await resume_attachment(session, resume_id)
    provider = await mailbox_service.provider_for(session, mailbox)
    message_id = await provider.send(build_mime(email, mailbox, attachment))
    return TestSendOut(
        to=mailbox.address,
        provider=mailbox.provider.value,
        message_id=message_id,
        subject=email.subject,
    )


async def stats(session: AsyncSession, *, campaign: Campaign) -> StatsOut:
    counts = (await campaign_service.counts(session, [campaign.id]))[campaign.id]
    unsubscribed = await session.scalar(
        select(func.count())
        .select_from(Suppression)
        .where(Suppression.source == f"campaign:{campaign.id}")
    )
    sent_times = await session.scalars(
        select(ScheduledEmail.sent_at).where(
            ScheduledEmail.campaign_id == campaign.id, ScheduledEmail.status == EmailStatus.sent
        )
    )
    mailbox = await session.get(Mailbox, campaign.mailbox_id)
    assert mailbox is not None
    per_day = emails_per_day(
        (t for t in sent_times if t is not None), campaign_timezone(campaign, mailbox)
    )
    errors = await last_errors(session, [campaign.id])
    answered = await tracking.recipients_by_kind(session, campaign)
    return StatsOut(
        counts=counts,
        last_error=errors.get(campaign.id),
        unsubscribed=int(unsubscribed or 0),
        sent_per_day=per_day,
        replied=answered.get("replied", 0),
        auto_replied=answered.get("auto_replied", 0),
        bounced=answered.get("bounced", 0),
        reply_rate=tracking.rate(answered.get("replied", 0), answered["emailed"]),
        steps=await tracking.step_stats(session, campaign),
    )
