"""Campaigns: create, preview, schedule, and control (pause, resume, cancel, approve).

Sending itself lives in :mod:`outreach.campaign.sending`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.campaign import followups
from outreach.campaign.audience import (
    Audience,
    AudienceOverview,
    audience_overview,
    build_audience,
    in_flight_statuses,
)
from outreach.campaign.planning import (
    EmailToPlan,
    PlanningError,
    PlanResult,
    SendingWindow,
    plan_sends,
)
from outreach.campaign.schemas import CampaignCreate, CampaignUpdate, EmailCounts
from outreach.config import get_settings
from outreach.credits.pricing import pricing_from_settings
from outreach.credits.service import credit_service
from outreach.kit.audit import record_audit
from outreach.kit.clock import utcnow
from outreach.kit.db import in_batches, new_row_ids
from outreach.kit.errors import Conflict, FieldError, NotFound, Unprocessable
from outreach.kit.jobs import enqueue_after_commit
from outreach.kit.pagination import Pagination, paginate
from outreach.mailbox.mime import make_message_id, make_message_ids
from outreach.mailbox.service import mailbox_service
from outreach.models import LedgerReason, Mailbox, MailboxStatus, User
from outreach.models.campaign import (
    Campaign,
    CampaignStatus,
    CampaignStep,
    EmailStatus,
    ScheduledEmail,
)
from outreach.models.recipient import Recipient
from outreach.models.recipient_list import ListStatus
from outreach.recipient.lists import list_service
from outreach.resume.service import ResumeNotFound, resume_service
from outreach.template.service import template_service

# Settings that PATCH may change while the campaign is a draft.
# Rows per INSERT statement, and recipients per batch of rows built at once.
_INSERT_BATCH = 1000

_EDITABLE = (
    "name",
    "mailbox_id",
    "template_id",
    "list_id",
    "start_at",
    "timezone",
    "window_days",
    "window_start",
    "window_end",
    "daily_cap",
    "min_gap_seconds",
    "jitter_seconds",
    "use_recipient_timezone",
    "company_cap",
    "skip_recently_emailed_days",
    "review_mode",
    "attach_resume",
    "followups_without_reply_detection",
    "stop_on_auto_reply",
)
_REFUNDABLE = (
    EmailStatus.waiting,
    EmailStatus.pending,
    EmailStatus.ready,
    EmailStatus.awaiting_approval,
)


class CampaignNotFound(NotFound):
    code, title = "campaign_not_found", "Campaign not found"


class CampaignNotDraft(Conflict):
    code, title = "campaign_not_draft", "Only a draft campaign can be changed this way"


class CampaignStateConflict(Conflict):
    code, title = "campaign_state", "The campaign cannot do that in its current state"


class InvalidCampaign(Unprocessable):
    code, title = "invalid_campaign", "The campaign settings are not usable"


class MailboxNotActive(Conflict):
    code, title = "mailbox_not_active", "The mailbox cannot send; reconnect or verify it"


class ListNotReady(Conflict):
    code, title = "list_not_ready", "The recipient list is still importing"


class NothingToSend(Unprocessable):
    code, title = "nothing_to_send", "No recipient is left to email"


def _invalid(field: str, message: str) -> InvalidCampaign:
    return InvalidCampaign(message, errors=[FieldError(loc=["body", field], message=message)])


def _hour_minute(value: str) -> time:
    hours, minutes = value.split(":")
    return time(23, 59, 59) if hours == "24" else time(int(hours), int(minutes))


def _zone(name: str, field: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise _invalid(field, f"unknown time zone {name!r}") from exc


def campaign_timezone(campaign: Campaign, mailbox: Mailbox) -> ZoneInfo:
    return _zone(campaign.timezone or mailbox.timezone, "timezone")


def sending_window(campaign: Campaign, timezone: ZoneInfo) -> SendingWindow:
    try:
        return SendingWindow(
            timezone=timezone,
            weekdays=frozenset(campaign.window_days),
            start=_hour_minute(campaign.window_start),
            end=_hour_minute(campaign.window_end),
        )
    except PlanningError as exc:
        raise _invalid("window_start", str(exc)) from exc


class CampaignService:
    # -- reading ---------------------------------------------------------------------

    async def get(self, session: AsyncSession, *, user: User, campaign_id: uuid.UUID) -> Campaign:
        """The user's campaign; another user's is a 404."""
        campaign = await session.scalar(
            select(Campaign).where(Campaign.id == campaign_id, Campaign.user_id == user.id)
        )
        if campaign is None:
            raise CampaignNotFound(f"no campaign {campaign_id}")
        return campaign

    async def list_campaigns(
        self, session: AsyncSession, *, user: User, pagination: Pagination
    ) -> tuple[list[Campaign], str | None]:
        statement = select(Campaign).where(Campaign.user_id == user.id)
        return await paginate(
            session, statement, pagination, created_at=Campaign.created_at, id_column=Campaign.id
        )

    async def status_counts(self, session: AsyncSession, *, user: User) -> dict[str, int]:
        """The user's campaigns counted by status."""
        rows = await session.execute(
            select(Campaign.status, func.count())
            .where(Campaign.user_id == user.id)
            .group_by(Campaign.status)
        )
        return {CampaignStatus(status).value: count for status, count in rows}

    async def latest_draft(self, session: AsyncSession, *, user: User) -> Campaign | None:
        return await session.scalar(
            select(Campaign)
            .where(Campaign.user_id == user.id, Campaign.status == CampaignStatus.draft)
            .order_by(Campaign.created_at.desc(), Campaign.id.desc())
            .limit(1)
        )

    async def audience_overview(
        self, session: AsyncSession, *, campaign: Campaign
    ) -> AudienceOverview:
        """The campaign's recipients by verification status and suppression (no rendering)."""
        return await audience_overview(session, campaign)

    async def counts(
        self, session: AsyncSession, campaign_ids: list[uuid.UUID]
    ) -> dict[uuid.UUID, EmailCounts]:
        """Emails per status for each campaign, in one query."""
        rows = await session.execute(
            select(ScheduledEmail.campaign_id, ScheduledEmail.status, func.count())
            .where(ScheduledEmail.campaign_id.in_(campaign_ids))
            .group_by(ScheduledEmail.campaign_id, ScheduledEmail.status)
        )
        result = {cid: EmailCounts() for cid in campaign_ids}
        for campaign_id, status, count in rows:
            counts = result[campaign_id]
            setattr(counts, EmailStatus(status).value, count)
            counts.total += count
        return result

    # -- drafting --------------------------------------------------------------------

    async def _check_references(
        self, session: AsyncSession, *, user: User, campaign: Campaign
    ) -> Mailbox:
        mailbox = await mailbox_service.get_mailbox(
            session, user=user, mailbox_id=campaign.mailbox_id
        )
        await template_service.get(session, user=user, template_id=campaign.template_id)
        if campaign.list_id is not None:
            await list_service.get_list(session, user_id=user.id, list_id=campaign.list_id)
        elif not campaign.recipient_ids:
            raise _invalid("list_id", "give a list_id or recipient_ids")
        if campaign.daily_cap is not None and campaign.daily_cap > mailbox.daily_cap:
            raise _invalid("daily_cap", f"the mailbox allows at most {mailbox.daily_cap} a day")
        sending_window(campaign, campaign_timezone(campaign, mailbox))
        return mailbox

    async def create(self, session: AsyncSession, *, user: User, data: CampaignCreate) -> Campaign:
        """A draft campaign; references are checked (another user's mailbox → 404)."""
        values = data.model_dump(exclude={"recipient_ids", "start_at", "steps"})
        campaign = Campaign(
            user_id=user.id,
            **values,
            recipient_ids=[str(i) for i in data.recipient_ids],
            start_at=data.start_at or utcnow(),
            status=CampaignStatus.draft,
        )
        if campaign.list_id is not None and data.recipient_ids:
            raise _invalid("recipient_ids", "give a list_id or recipient_ids, not both")
        await self._check_references(session, user=user, campaign=campaign)
        session.add(campaign)
        await session.flush()
        await followups.save_steps(session, user=user, campaign=campaign, steps=data.steps)
        return campaign

    async def update(
        self, session: AsyncSession, *, user: User, campaign: Campaign, data: CampaignUpdate
    ) -> Campaign:
        if campaign.status != CampaignStatus.draft:
            raise CampaignNotDraft("a scheduled campaign cannot be edited; cancel it instead")
        for name in _EDITABLE:
            if name in data.model_fields_set:
                setattr(campaign, name, getattr(data, name))
        await self._check_references(session, user=user, campaign=campaign)
        if data.steps is not None:
            await followups.save_steps(session, user=user, campaign=campaign, steps=data.steps)
        await session.flush()
        return campaign

    async def delete(self, session: AsyncSession, *, campaign: Campaign) -> None:
        if campaign.status != CampaignStatus.draft:
            raise CampaignNotDraft("only a draft can be deleted; cancel a scheduled campaign")
        await session.delete(campaign)
        await session.flush()

    # -- preview and schedule ---------------------------------------------------------

    async def prepare(
        self, session: AsyncSession, *, user: User, campaign: Campaign
    ) -> tuple[Mailbox, Audience, PlanResult, Any]:
        """Everything preview and schedule share: checks, audience, plan."""
        mailbox = await self._check_references(session, user=user, campaign=campaign)
        if mailbox.status != MailboxStatus.active:
            raise MailboxNotActive(f"{mailbox.address} is {mailbox.status.value}")
        if campaign.list_id is not None:
            recipient_list = await list_service.get_list(
                session, user_id=user.id, list_id=campaign.list_id
            )
            if recipient_list.status != ListStatus.ready:
                raise ListNotReady(f"the list is {recipient_list.status.value}; wait for it")
        template = await template_service.get(session, user=user, template_id=campaign.template_id)
        version = await template_service.get_version(session, template=template)
        audience = await build_audience(session, campaign=campaign, user=user, version=version)
        steps = await followups.campaign_steps(session, campaign.id)
        followups.check_reply_detection(campaign, mailbox, steps)
        if steps:
            await followups.render_steps(
                session, user=user, campaign=campaign, steps=steps, audience=audience
            )
        plan = await self._plan(session, campaign=campaign, mailbox=mailbox, audience=audience)
        return mailbox, audience, plan, version

    async def _plan(
        self, session: AsyncSession, *, campaign: Campaign, mailbox: Mailbox, audience: Audience
    ) -> PlanResult:
        timezone = campaign_timezone(campaign, mailbox)
        window = sending_window(campaign, timezone)
        now = utcnow()
        booked = await session.scalars(
            select(ScheduledEmail.due_at).where(
                ScheduledEmail.mailbox_id == mailbox.id,
                ScheduledEmail.status.in_(in_flight_statuses()),
            )
        )
        sent_today = await session.scalars(
            select(ScheduledEmail.sent_at).where(
                ScheduledEmail.mailbox_id == mailbox.id,
                ScheduledEmail.sent_at >= now - timedelta(days=1),
            )
        )
        capped = campaign.company_cap is not None
        domains = {c.company_domain for c in audience.to_send if c.company_domain and capped}
        company_times = await self._company_bookings(session, campaign.user_id, domains)
        per_recipient = campaign.use_recipient_timezone
        emails = [
            EmailToPlan(
                key=index,
                company_domain=candidate.company_domain if capped else None,
                window=(
                    self._recipient_window(window, candidate.recipient.timezone)
                    if per_recipient and candidate.recipient.timezone
                    else None
                ),
            )
            for index, candidate in enumerate(audience.to_send)
        ]
        try:
            return plan_sends(
                emails,
                start_at=max(campaign.start_at, now),
                window=window,
                mailbox_timezone=_zone(mailbox.timezone, "timezone"),
                daily_cap=campaign.daily_cap or mailbox.daily_cap,
                min_gap=timedelta(seconds=campaign.min_gap_seconds),
                jitter=timedelta(seconds=campaign.jitter_seconds),
                company_cap=campaign.company_cap,
                booked_times=[*booked, *(t for t in sent_today if t is not None)],
                booked_company_times=company_times,
            )
        except PlanningError as exc:
            raise _invalid("window_start", str(exc)) from exc

    @staticmethod
    async def _company_bookings(
        session: AsyncSession,
        user_id: uuid.UUID,
        domains: set[str],
        excluding: Sequence[uuid.UUID] = (),
    ) -> list[tuple[str, datetime]]:
        """The user's sends per company domain, sent or planned, for the company cap."""
        excluded = set(excluding)  # left out here: a list of ids can pass the parameter limit
        bookings: list[tuple[str, datetime]] = []
        for batch in in_batches(domains):
            rows = await session.execute(
                select(
                    ScheduledEmail.id,
                    ScheduledEmail.company_domain,
                    ScheduledEmail.due_at,
                    ScheduledEmail.sent_at,
                ).where(
                    ScheduledEmail.user_id == user_id,
                    ScheduledEmail.company_domain.in_(batch),
                    ScheduledEmail.status.not_in(
                        [EmailStatus.cancelled, EmailStatus.failed, EmailStatus.skipped]
                    ),
                )
            )
            bookings += [
                (domain, sent or due)
                for email_id, domain, due, sent in rows
                if domain and email_id not in excluded
            ]
        return bookings

    @staticmethod
    def _recipient_window(window: SendingWindow, tz_name: str) -> SendingWindow | None:
        """The campaign's hours in the recipient's own time zone."""
        try:
            zone = ZoneInfo(tz_name)
        except (ZoneInfoNotFoundError, ValueError):
            return None  # an unknown zone in a list cell: the campaign's window
        return SendingWindow(
            timezone=zone, weekdays=window.weekdays, start=window.start, end=window.end
        )

    async def schedule(
        self, session: AsyncSession, *, user: User, campaign: Campaign
    ) -> tuple[int, int, dict[str, int]]:
        """Charge 1 credit per email once, plan every send and store the emails.

        Returns (scheduled, charged, skipped counts). A job then prepares drafts.
        """
        # Two schedules racing (two keys, or the API and a page) would both see a draft:
        # the second's debit replays the first's, yet it would plan every email again
        # (each sent twice, and refunded for credits nobody paid). The row lock makes
        # the second wait, then see the campaign scheduled.
        await session.refresh(campaign, with_for_update=True)
        if campaign.status != CampaignStatus.draft:
            raise CampaignStateConflict(f"the campaign is already {campaign.status.value}")
        if campaign.start_at < utcnow() - timedelta(minutes=5):
            raise _invalid("start_at", "the start time is in the past; choose a new one")
        mailbox, audience, plan, version = await self.prepare(session, user=user, campaign=campaign)
        if not audience.to_send:
            raise NothingToSend("every recipient was skipped", skipped=audience.skipped_counts)
        price = pricing_from_settings(get_settings()).scheduled_email
        steps = await followups.campaign_steps(session, campaign.id)
        cost = price * len(audience.to_send) * (1 + len(steps))
        if cost:
            await credit_service.apply_ledger_entry(
                session,
                user_id=user.id,
                delta=-cost,
                reason=LedgerReason.campaign_schedule,
                ref=str(campaign.id),
                idempotency_key=f"campaign:{campaign.id}:schedule",
            )
        for step, step_version in zip(steps, audience.followup_versions, strict=True):
            step.template_version = step_version
        stored = await self._store_emails(session, campaign, mailbox, audience, plan, steps)
        if campaign.attach_resume:
            campaign.resume_id = await self.resume_to_attach(session, user=user)
        campaign.status = CampaignStatus.scheduled
        campaign.template_version = version.version
        campaign.scheduled_at = utcnow()
        await session.flush()
        await record_audit(
            session,
            action="campaign.schedule",
            actor_id=user.id,
            target_type="campaign",
            target_id=campaign.id,
            details={"emails": stored, "credits": cost},
        )
        enqueue_after_commit(session, "campaign.prepare_emails", campaign_id=str(campaign.id))
        return stored, cost, audience.skipped_counts

    @staticmethod
    async def _store_emails(
        session: AsyncSession,
        campaign: Campaign,
        mailbox: Mailbox,
        audience: Audience,
        plan: PlanResult,
        steps: Sequence[CampaignStep],
    ) -> int:
        """Insert every planned email (and its follow-ups), a batch of recipients at a
        time: the rows of one batch are gone before the next is built, so a schedule of
        10,000 does not keep 10,000 row dicts alive for the collector to walk."""
        domain = mailbox.address.rsplit("@", 1)[-1]
        now = utcnow()
        stored = 0
        for start in range(0, len(audience.to_send), _INSERT_BATCH):
            batch = audience.to_send[start : start + _INSERT_BATCH]
            ids = new_row_ids(len(batch))
            message_ids = make_message_ids(domain, len(batch))
            rows = [
                {
                    "id": ids[offset],
                    "created_at": now,
                    "updated_at": now,
                    "campaign_id": campaign.id,
                    "user_id": campaign.user_id,
                    "mailbox_id": mailbox.id,
                    "recipient_id": candidate.recipient.id,
                    "to_address": candidate.recipient.email,
                    "to_name": candidate.recipient.name,
                    "company_domain": candidate.company_domain,
                    "status": EmailStatus.pending,
                    "due_at": plan.due_at[start + offset],
                    "subject": candidate.subject,
                    "body_text": candidate.text,
                    "body_html": candidate.html,
                    "rfc822_message_id": message_ids[offset],
                    "attempts": 0,
                    "refunded": False,
                }
                for offset, candidate in enumerate(batch)
            ]
            rows += followups.followup_rows(
                rows,
                steps,
                audience.followups[start : start + _INSERT_BATCH] if steps else [],
                message_id=lambda: make_message_id(domain),
            )
            # A follow-up comes after the email it follows: its link is checked on insert.
            for offset in range(0, len(rows), _INSERT_BATCH):
                await session.execute(insert(ScheduledEmail), rows[offset : offset + _INSERT_BATCH])
            stored += len(rows)
        return stored

    async def resume_to_attach(self, session: AsyncSession, *, user: User) -> uuid.UUID:
        """The latest resume, for a campaign that attaches it; 422 when there is none."""
        try:
            resume, _ = await resume_service.latest(session, user=user)
        except ResumeNotFound as exc:
            raise _invalid("attach_resume", "upload a resume first, or do not attach one") from exc
        return resume.id

    # -- control ---------------------------------------------------------------------

    async def pause(self, session: AsyncSession, *, campaign: Campaign, reason: str) -> Campaign:
        if campaign.status not in (CampaignStatus.scheduled, CampaignStatus.sending):
            raise CampaignStateConflict(f"a {campaign.status.value} campaign cannot be paused")
        campaign.status = CampaignStatus.paused
        campaign.paused_reason = reason
        await session.flush()
        return campaign

    async def resume(self, session: AsyncSession, *, user: User, campaign: Campaign) -> Campaign:
        """Resume a paused campaign; emails whose time passed are spread from now on."""
        if campaign.status != CampaignStatus.paused:
            raise CampaignStateConflict(f"a {campaign.status.value} campaign is not paused")
        mailbox = await mailbox_service.get_mailbox(
            session, user=user, mailbox_id=campaign.mailbox_id
        )
        if mailbox.status != MailboxStatus.active:
            raise MailboxNotActive(
                f"{mailbox.address} is {mailbox.status.value}; reconnect it first"
            )
        await self.replan_overdue(session, campaign=campaign, mailbox=mailbox)
        campaign.status = CampaignStatus.scheduled
        campaign.paused_reason = None
        await session.flush()
        enqueue_after_commit(session, "campaign.prepare_emails", campaign_id=str(campaign.id))
        return campaign

    async def replan_overdue(
        self,
        session: AsyncSession,
        *,
        campaign: Campaign,
        mailbox: Mailbox,
        after: datetime | None = None,
    ) -> int:
        """Move waiting emails that are due (or due before ``after``) into the next windows."""
        moment = after or utcnow()
        rows = (
            await session.execute(
                select(ScheduledEmail, Recipient.timezone)
                .outerjoin(Recipient, Recipient.id == ScheduledEmail.recipient_id)
                .where(
                    ScheduledEmail.campaign_id == campaign.id,
                    ScheduledEmail.status.in_(_REFUNDABLE),
                    ScheduledEmail.due_at < moment,
                )
                .order_by(ScheduledEmail.due_at)
            )
        ).all()
        if not rows:
            return 0
        await self.spread(
            session,
            campaign=campaign,
            mailbox=mailbox,
            emails=[(email, recipient_timezone) for email, recipient_timezone in rows],
            moment=moment,
        )
        return len(rows)

    async def spread(
        self,
        session: AsyncSession,
        *,
        campaign: Campaign,
        mailbox: Mailbox,
        emails: list[tuple[ScheduledEmail, str | None]],
        moment: datetime,
    ) -> None:
        """Give ``emails`` (each with its recipient's time zone) due times from
        ``moment`` on, in the campaign's windows, around what is already booked."""
        overdue = [email for email, _ in emails]
        timezone = campaign_timezone(campaign, mailbox)
        window = sending_window(campaign, timezone)
        capped = campaign.company_cap is not None
        # The same rules as when the campaign was scheduled: a recipient's own
        # business hours where the campaign asks for them, and the company cap.
        to_plan = [
            EmailToPlan(
                key=email.id,
                company_domain=email.company_domain if capped else None,
                window=(
                    self._recipient_window(window, recipient_timezone)
                    if campaign.use_recipient_timezone and recipient_timezone
                    else None
                ),
            )
            for email, recipient_timezone in emails
        ]
        company_times = (
            await self._company_bookings(
                session,
                campaign.user_id,
                {e.company_domain for e in overdue if e.company_domain},
                excluding=[e.id for e in overdue],
            )
            if capped
            else []
        )
        booked = await session.scalars(
            select(ScheduledEmail.due_at).where(
                ScheduledEmail.mailbox_id == mailbox.id,
                ScheduledEmail.status.in_(in_flight_statuses()),
                ScheduledEmail.due_at >= moment,
            )
        )
        sent = await session.scalars(
            select(ScheduledEmail.sent_at).where(
                ScheduledEmail.mailbox_id == mailbox.id,
                ScheduledEmail.sent_at >= moment - timedelta(days=1),
            )
        )
        plan = plan_sends(
            to_plan,
            start_at=moment,
            window=window,
            mailbox_timezone=_zone(mailbox.timezone, "timezone"),
            daily_cap=campaign.daily_cap or mailbox.daily_cap,
            min_gap=timedelta(seconds=campaign.min_gap_seconds),
            jitter=timedelta(seconds=campaign.jitter_seconds),
            company_cap=campaign.company_cap,
            booked_times=[*booked, *(t for t in sent if t is not None)],
            booked_company_times=company_times,
        )
        for email in overdue:
            email.due_at = plan.due_at[email.id]
        await session.flush()

    async def refund_email(
        self, session: AsyncSession, *, email: ScheduledEmail, status: EmailStatus
    ) -> None:
        """End an unsent email as cancelled, skipped or failed and give its credit back, once."""
        email.status = status
        email.lease_until = None
        if email.refunded:
            return
        price = pricing_from_settings(get_settings()).scheduled_email
        if price:
            await credit_service.apply_ledger_entry(
                session,
                user_id=email.user_id,
                delta=price,
                reason=LedgerReason.campaign_refund,
                ref=str(email.id),
                idempotency_key=f"campaign-email:{email.id}:refund",
            )
        email.refunded = True

    async def cancel(self, session: AsyncSession, *, campaign: Campaign) -> int:
        """Cancel every email not yet sent (drafts deleted by the sending module), refunded."""
        if campaign.status in (CampaignStatus.cancelled, CampaignStatus.completed):
            raise CampaignStateConflict(f"the campaign is already {campaign.status.value}")
        waiting = list(
            (
                await session.scalars(
                    select(ScheduledEmail).where(
                        ScheduledEmail.campaign_id == campaign.id,
                        ScheduledEmail.status.in_(_REFUNDABLE),
                    )
                )
            ).all()
        )
        for email in waiting:
            await self.refund_email(session, email=email, status=EmailStatus.cancelled)
        campaign.status = CampaignStatus.cancelled
        await session.flush()
        await record_audit(
            session,
            action="campaign.cancel",
            actor_id=campaign.user_id,
            target_type="campaign",
            target_id=campaign.id,
            details={"cancelled_emails": len(waiting)},
        )
        drafts = [e.draft_id for e in waiting if e.draft_id]
        if drafts:
            enqueue_after_commit(
                session,
                "campaign.delete_drafts",
                mailbox_id=str(campaign.mailbox_id),
                draft_ids=drafts,
            )
        return len(waiting)

    async def approve(
        self, session: AsyncSession, *, campaign: Campaign, email_ids: list[uuid.UUID] | None
    ) -> int:
        """Release emails waiting for review (some, or all)."""
        statement = (
            update(ScheduledEmail)
            .where(
                ScheduledEmail.campaign_id == campaign.id,
                ScheduledEmail.status == EmailStatus.awaiting_approval,
            )
            .values(status=EmailStatus.ready, updated_at=utcnow())
        )
        if email_ids is not None:
            statement = statement.where(ScheduledEmail.id.in_(email_ids))
        result = await session.execute(statement)
        return int(getattr(result, "rowcount", 0) or 0)

    async def pause_for_mailbox(
        self, session: AsyncSession, *, mailbox_id: uuid.UUID, reason: str
    ) -> int:
        """The mailbox stopped working: pause every campaign sending through it."""
        result = await session.execute(
            update(Campaign)
            .where(
                Campaign.mailbox_id == mailbox_id,
                Campaign.status.in_([CampaignStatus.scheduled, CampaignStatus.sending]),
            )
            .values(status=CampaignStatus.paused, paused_reason=reason, updated_at=utcnow())
        )
        return int(getattr(result, "rowcount", 0) or 0)


campaign_service = CampaignService()
