"""Operator and account-level actions on campaigns: retrying a failed send, and
closing every campaign of an account that is being deleted."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.campaign.service import CampaignStateConflict, campaign_service
from outreach.config import get_settings
from outreach.credits.pricing import pricing_from_settings
from outreach.credits.service import credit_service
from outreach.kit.audit import record_audit
from outreach.kit.clock import utcnow
from outreach.kit.errors import Conflict
from outreach.kit.jobs import enqueue_after_commit
from outreach.mailbox.mime import make_message_id
from outreach.models import LedgerReason, Mailbox, Recipient
from outreach.models.campaign import Campaign, CampaignStatus, EmailStatus, ScheduledEmail
from outreach.recipient.suppression import suppression_service

_WAITING = (
    EmailStatus.waiting,
    EmailStatus.pending,
    EmailStatus.ready,
    EmailStatus.awaiting_approval,
)
_OPEN = (
    CampaignStatus.draft,
    CampaignStatus.scheduled,
    CampaignStatus.sending,
    CampaignStatus.paused,
)


class EmailNotRetryable(Conflict):
    code, title = "email_not_retryable", "Only a failed email of a live campaign can be retried"


@dataclass(frozen=True)
class SendRetry:
    failed_email_id: uuid.UUID
    retry_email_id: uuid.UUID
    charged_credits: int


class CampaignOperations:
    async def retry_failed_email(
        self, session: AsyncSession, *, email_id: uuid.UUID, charge_key: str
    ) -> SendRetry:
        """Send a failed email again, charging its credit again (it was refunded).

        The failed email keeps its outcome (every email ends in exactly one final
        status); a new email for the same recipient and content is planned in the
        campaign's next window and goes through preparing, claiming under a lease
        and reconciling like any other, so it is never sent twice. ``charge_key``
        makes the charge happen once. A short balance raises 402 having changed
        nothing.
        """
        failed = await session.get(ScheduledEmail, email_id, with_for_update=True)
        if failed is None:
            raise EmailNotRetryable(f"email {email_id} no longer exists")
        campaign = await session.get(Campaign, failed.campaign_id, with_for_update=True)
        mailbox = await session.get(Mailbox, failed.mailbox_id)
        assert campaign is not None  # foreign keys
        assert mailbox is not None
        self._check_retryable(failed, campaign)
        if await suppression_service.is_suppressed(
            session, user_id=failed.user_id, email=failed.to_address
        ):
            raise EmailNotRetryable("the recipient has been suppressed since; not sent again")
        price = pricing_from_settings(get_settings()).scheduled_email
        if price:
            await credit_service.apply_ledger_entry(
                session,
                user_id=failed.user_id,
                delta=-price,
                reason=LedgerReason.campaign_retry,
                ref=str(failed.id),
                idempotency_key=charge_key,
            )
        retry = self._copy_for_retry(failed, mailbox)
        recipient_timezone = (
            await session.scalar(
                select(Recipient.timezone).where(Recipient.id == failed.recipient_id)
            )
            if failed.recipient_id
            else None
        )
        await campaign_service.spread(
            session,
            campaign=campaign,
            mailbox=mailbox,
            emails=[(retry, recipient_timezone)],
            moment=utcnow(),
        )
        session.add(retry)
        await self._reopen(session, campaign)
        await session.flush()
        if campaign.status in (CampaignStatus.scheduled, CampaignStatus.sending):
            enqueue_after_commit(session, "campaign.prepare_emails", campaign_id=str(campaign.id))
        if failed.draft_id:
            # A draft left by the failed attempt would tempt a manual send: remove it.
            enqueue_after_commit(
                session,
                "campaign.delete_drafts",
                mailbox_id=str(mailbox.id),
                draft_ids=[failed.draft_id],
            )
        return SendRetry(failed.id, retry.id, price)

    @staticmethod
    def _check_retryable(failed: ScheduledEmail, campaign: Campaign) -> None:
        if failed.status != EmailStatus.failed:
            raise EmailNotRetryable(f"the email is {failed.status.value}, not failed")
        if campaign.status == CampaignStatus.cancelled:
            raise CampaignStateConflict("the campaign was cancelled; its emails stay unsent")

    @staticmethod
    def _copy_for_retry(failed: ScheduledEmail, mailbox: Mailbox) -> ScheduledEmail:
        now = utcnow()
        return ScheduledEmail(
            id=uuid.uuid4(),
            created_at=now,
            updated_at=now,
            campaign_id=failed.campaign_id,
            user_id=failed.user_id,
            mailbox_id=failed.mailbox_id,
            recipient_id=failed.recipient_id,
            to_address=failed.to_address,
            to_name=failed.to_name,
            company_domain=failed.company_domain,
            status=EmailStatus.pending,
            due_at=now,
            subject=failed.subject,
            body_text=failed.body_text,
            body_html=failed.body_html,
            # A new Message-ID: reconciliation looks the new send up by it alone.
            rfc822_message_id=make_message_id(mailbox.address.rsplit("@", 1)[-1]),
            attempts=0,
            refunded=False,
        )

    @staticmethod
    async def _reopen(session: AsyncSession, campaign: Campaign) -> None:
        """A completed campaign has an email to send again: it is sending once more."""
        if campaign.status != CampaignStatus.completed:
            return
        any_sent = await session.scalar(
            select(
                exists().where(
                    ScheduledEmail.campaign_id == campaign.id,
                    ScheduledEmail.status == EmailStatus.sent,
                )
            )
        )
        campaign.status = CampaignStatus.sending if any_sent else CampaignStatus.scheduled
        campaign.completed_at = None

    async def emails_in_flight(self, session: AsyncSession, *, user_id: uuid.UUID) -> int:
        """The user's emails claimed by a sender right now (their outcome is not known yet)."""
        count = await session.scalar(
            select(func.count())
            .select_from(ScheduledEmail)
            .where(ScheduledEmail.user_id == user_id, ScheduledEmail.status == EmailStatus.sending)
        )
        return int(count or 0)

    async def email_statuses_since(
        self, session: AsyncSession, *, since: datetime
    ) -> dict[str, int]:
        """How many emails changed since ``since``, by the status they now have (what a
        send tick did, for ``outreach tick send``)."""
        rows = await session.execute(
            select(ScheduledEmail.status, func.count())
            .where(ScheduledEmail.updated_at >= since)
            .group_by(ScheduledEmail.status)
        )
        return {EmailStatus(status).value: int(count) for status, count in rows.all()}

    async def close_for_account_deletion(self, session: AsyncSession, *, user_id: uuid.UUID) -> int:
        """Cancel every unsent email of the user (each refunded once, through the ledger),
        then delete the user's campaigns and their emails. Returns the emails cancelled."""
        waiting = list(
            (
                await session.scalars(
                    select(ScheduledEmail).where(
                        ScheduledEmail.user_id == user_id, ScheduledEmail.status.in_(_WAITING)
                    )
                )
            ).all()
        )
        for email in waiting:
            await campaign_service.refund_email(session, email=email, status=EmailStatus.cancelled)
        open_campaigns = await session.scalar(
            select(func.count())
            .select_from(Campaign)
            .where(Campaign.user_id == user_id, Campaign.status.in_(_OPEN))
        )
        await session.flush()
        await record_audit(
            session,
            action="campaign.cancelled_for_account_deletion",
            actor_id=user_id,
            target_type="user",
            target_id=user_id,
            details={"cancelled_emails": len(waiting), "open_campaigns": open_campaigns or 0},
        )
        await session.execute(delete(ScheduledEmail).where(ScheduledEmail.user_id == user_id))
        await session.execute(delete(Campaign).where(Campaign.user_id == user_id))
        return len(waiting)


campaign_operations = CampaignOperations()
