"""Reading what came back: stats per campaign and per step, a recipient's timeline, and
the hand-made "they replied" for mailboxes that cannot see replies."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.campaign import replies
from outreach.campaign.schemas import (
    MarkRepliedOut,
    StepStats,
    TimelineEntry,
    TimelineOut,
)
from outreach.kit.errors import Conflict, FieldError, NotFound
from outreach.models import EmailEvent, EmailEventKind, EmailEventSource
from outreach.models.campaign import Campaign, EmailStatus, ScheduledEmail

_KINDS = {
    EmailEventKind.replied: "replied",
    EmailEventKind.auto_reply: "auto_replied",
    EmailEventKind.bounced: "bounced",
    EmailEventKind.unsubscribed: "unsubscribed",
}


class RecipientNotInCampaign(NotFound):
    code, title = "recipient_not_in_campaign", "The campaign has no email to this address"


class NothingSentYet(Conflict):
    code, title = "nothing_sent_yet", "Nothing was sent to this address yet"


def rate(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


async def step_stats(session: AsyncSession, campaign: Campaign) -> list[StepStats]:
    """Emails and recipients' answers per step (an answer counts at the step it answered)."""
    by_status: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for step, status, count in await session.execute(
        select(ScheduledEmail.step, ScheduledEmail.status, func.count())
        .where(ScheduledEmail.campaign_id == campaign.id)
        .group_by(ScheduledEmail.step, ScheduledEmail.status)
    ):
        by_status[step][EmailStatus(status).value] += count
    answers: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for step, kind, count in await session.execute(
        select(
            ScheduledEmail.step,
            EmailEvent.kind,
            func.count(func.distinct(EmailEvent.recipient_address)),
        )
        .join(ScheduledEmail, ScheduledEmail.id == EmailEvent.scheduled_email_id)
        .where(EmailEvent.campaign_id == campaign.id)
        .group_by(ScheduledEmail.step, EmailEvent.kind)
    ):
        answers[step][_KINDS[EmailEventKind(kind)]] += count
    return [
        StepStats(
            step=step,
            scheduled=sum(by_status[step].values()),
            sent=by_status[step]["sent"],
            cancelled=by_status[step]["cancelled"] + by_status[step]["skipped"],
            reply_rate=rate(answers[step]["replied"], by_status[step]["sent"]),
            **{name: answers[step][name] for name in _KINDS.values()},
        )
        for step in sorted(by_status)
    ]


async def recipients_by_kind(session: AsyncSession, campaign: Campaign) -> dict[str, int]:
    """Distinct recipients per answer kind, and ``emailed`` (sent at least one email)."""
    rows = await session.execute(
        select(EmailEvent.kind, func.count(func.distinct(EmailEvent.recipient_address)))
        .where(EmailEvent.campaign_id == campaign.id)
        .group_by(EmailEvent.kind)
    )
    counts = {_KINDS[EmailEventKind(kind)]: count for kind, count in rows}
    counts["emailed"] = int(
        await session.scalar(
            select(func.count(func.distinct(ScheduledEmail.to_address))).where(
                ScheduledEmail.campaign_id == campaign.id,
                ScheduledEmail.status == EmailStatus.sent,
            )
        )
        or 0
    )
    return counts


async def mark_replied(
    session: AsyncSession, *, campaign: Campaign, address: str
) -> MarkRepliedOut:
    """The user heard back (by phone, another inbox, a mailbox we cannot read): record the
    reply on the last email sent to them and stop their follow-ups (refunded)."""
    address = address.strip().lower()
    any_email = await session.scalar(
        select(ScheduledEmail.id).where(
            ScheduledEmail.campaign_id == campaign.id, ScheduledEmail.to_address == address
        )
    )
    if any_email is None:
        raise RecipientNotInCampaign(
            f"no email of this campaign goes to {address}",
            errors=[FieldError(loc=["body", "email"], message="not a recipient of the campaign")],
        )
    sent = await replies.latest_sent_to(session, campaign_id=campaign.id, address=address)
    if sent is None:
        raise NothingSentYet(
            f"nothing was sent to {address} yet; cancel the campaign or wait for the first email"
        )
    cancelled = await replies.record_event(
        session,
        email=sent,
        kind=EmailEventKind.replied,
        source=EmailEventSource.manual,
        dedupe_key="manual",
    )
    return MarkRepliedOut(
        email=address, recorded=cancelled is not None, cancelled_followups=cancelled or 0
    )


async def timeline(session: AsyncSession, *, campaign: Campaign, address: str) -> TimelineOut:
    """Every email of the campaign to ``address`` and everything that came back, in order."""
    address = address.strip().lower()
    emails = list(
        (
            await session.scalars(
                select(ScheduledEmail).where(
                    ScheduledEmail.campaign_id == campaign.id,
                    ScheduledEmail.to_address == address,
                )
            )
        ).all()
    )
    if not emails:
        raise RecipientNotInCampaign(f"no email of this campaign goes to {address}")
    steps = {e.id: e.step for e in emails}
    entries = [
        TimelineEntry(at=e.sent_at or e.due_at, step=e.step, what=e.status.value, detail=e.subject)
        for e in emails
    ]
    for event in await session.scalars(
        select(EmailEvent).where(EmailEvent.scheduled_email_id.in_(list(steps)))
    ):
        entries.append(
            TimelineEntry(
                at=event.occurred_at,
                step=steps[event.scheduled_email_id],
                what=event.kind.value,
                source=event.source.value,
                detail=event.detail,
            )
        )
    return TimelineOut(email=address, entries=sorted(entries, key=lambda e: (e.at, e.step)))
