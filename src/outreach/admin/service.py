"""Operator actions on users, credits and the audit trail."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from outreach.account.identity import deleted_user_clause
from outreach.admin.schemas import AdminStats, FailedJobOut, FailedJobRetryOut
from outreach.campaign.operations import campaign_operations
from outreach.campaign.sending import SEND_EMAIL_TASK
from outreach.credits.service import credit_service
from outreach.kit.audit import record_audit
from outreach.kit.clock import utcnow
from outreach.kit.errors import Conflict, NotFound, Unprocessable
from outreach.kit.jobs import enqueue_after_commit, registered_jobs
from outreach.kit.pagination import Pagination, paginate
from outreach.models import (
    AuditLog,
    Base,
    Campaign,
    CampaignStatus,
    CreditAccount,
    EmailStatus,
    FailedJob,
    LedgerEntry,
    LedgerReason,
    Mailbox,
    MailboxStatus,
    PaymentOrder,
    PaymentOrderStatus,
    ScheduledEmail,
    User,
)


class ZeroGrant(Unprocessable):
    code, title = "zero_grant", "A credit grant must change the balance"


class FailedJobNotFound(NotFound):
    code, title = "failed_job_not_found", "Failed job not found"


class FailedJobNotRetryable(Conflict):
    code, title = "failed_job_not_retryable", "This failed job cannot be retried"


def _retry_charge_key(failed_job_id: uuid.UUID) -> str:
    return f"failed-job:{failed_job_id}:retry"


class AdminService:
    async def list_users(
        self, session: AsyncSession, *, pagination: Pagination, search: str | None
    ) -> tuple[list[tuple[User, int]], str | None]:
        """Users newest first, optionally matching ``search`` in email or name."""
        statement = select(User)
        if search:
            pattern = f"%{search.strip().lower()}%"
            statement = statement.where(
                or_(func.lower(User.email).like(pattern), func.lower(User.name).like(pattern))
            )
        users, cursor = await paginate(
            session, statement, pagination, created_at=User.created_at, id_column=User.id
        )
        rows = await session.execute(
            select(CreditAccount.user_id, CreditAccount.balance).where(
                CreditAccount.user_id.in_([u.id for u in users])
            )
        )
        balances: dict[uuid.UUID, int] = dict(rows.all())
        return [(user, balances.get(user.id, 0)) for user in users], cursor

    async def grant_credits(
        self,
        session: AsyncSession,
        *,
        user: User,
        delta: int,
        reason: str,
        actor_id: uuid.UUID | None,
        idempotency_key: str,
    ) -> LedgerEntry:
        """Add or deduct credits by hand; goes through the ledger and the audit log."""
        if delta == 0:
            raise ZeroGrant("delta must not be 0")
        entry = await credit_service.apply_ledger_entry(
            session,
            user_id=user.id,
            delta=delta,
            reason=LedgerReason.admin_grant if delta > 0 else LedgerReason.admin_deduct,
            ref=reason,
            idempotency_key=idempotency_key,
        )
        await record_audit(
            session,
            action="admin.credit_grant",
            actor_id=actor_id,
            target_type="user",
            target_id=user.id,
            details={"delta": delta, "reason": reason, "entry_id": str(entry.id)},
        )
        return entry

    async def list_audit_logs(
        self,
        session: AsyncSession,
        *,
        pagination: Pagination,
        actor_id: uuid.UUID | None,
        action: str | None,
        since: datetime | None,
        until: datetime | None,
    ) -> tuple[list[AuditLog], str | None]:
        statement = select(AuditLog)
        if actor_id is not None:
            statement = statement.where(AuditLog.actor_id == actor_id)
        if action is not None:
            statement = statement.where(AuditLog.action == action)
        if since is not None:
            statement = statement.where(AuditLog.created_at >= since)
        if until is not None:
            statement = statement.where(AuditLog.created_at < until)
        return await paginate(
            session, statement, pagination, created_at=AuditLog.created_at, id_column=AuditLog.id
        )

    # -- failed jobs -------------------------------------------------------------------

    async def list_failed_jobs(
        self,
        session: AsyncSession,
        *,
        actor_id: uuid.UUID | None,
        pagination: Pagination,
        task_name: str | None,
        retried: bool | None,
    ) -> tuple[list[FailedJob], str | None]:
        """The dead-letter list, newest first (the viewing is audited; ``actor_id`` None
        is the operator's command line)."""
        statement = select(FailedJob)
        if task_name is not None:
            statement = statement.where(FailedJob.task_name == task_name)
        if retried is not None:
            column = FailedJob.retried_at
            statement = statement.where(column.is_not(None) if retried else column.is_(None))
        await record_audit(
            session,
            action="admin.failed_jobs_viewed",
            actor_id=actor_id,
            details={"task_name": task_name, "retried": retried},
        )
        return await paginate(
            session, statement, pagination, created_at=FailedJob.created_at, id_column=FailedJob.id
        )

    async def retry_failed_job(
        self, session: AsyncSession, *, failed_job_id: uuid.UUID, actor_id: uuid.UUID | None
    ) -> FailedJobRetryOut:
        """Retry a failed job once: a job is enqueued again with its stored arguments; a
        failed send is charged again and planned again. Retrying it again (or
        concurrently) changes nothing and answers the same result."""
        failed = await session.get(FailedJob, failed_job_id)
        if failed is None:
            raise FailedJobNotFound(f"no failed job {failed_job_id}")
        claimed = await session.execute(
            update(FailedJob)
            .where(FailedJob.id == failed_job_id, FailedJob.retried_at.is_(None))
            .values(retried_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        if getattr(claimed, "rowcount", 0) == 1:
            # Only the request that set retried_at acts; the others answer what it did.
            await self._retry(session, failed, actor_id)
        await session.refresh(failed)
        return await self._retry_result(session, failed)

    async def _retry(
        self, session: AsyncSession, failed: FailedJob, actor_id: uuid.UUID | None
    ) -> None:
        details: dict[str, object] = {"task_name": failed.task_name}
        if failed.task_name == SEND_EMAIL_TASK:
            try:
                email_id = uuid.UUID(str(failed.args.get("email_id")))
            except ValueError as exc:
                raise FailedJobNotRetryable("the failed send does not name its email") from exc
            retried = await campaign_operations.retry_failed_email(
                session, email_id=email_id, charge_key=_retry_charge_key(failed.id)
            )
            details |= {
                "email_id": str(retried.failed_email_id),
                "retry_email_id": str(retried.retry_email_id),
                "charged_credits": retried.charged_credits,
            }
        else:
            args, kwargs = failed.args.get("args") or [], failed.args.get("kwargs") or {}
            if failed.task_name not in registered_jobs():
                raise FailedJobNotRetryable(f"no job named {failed.task_name!r} runs here now")
            if args:
                raise FailedJobNotRetryable("jobs are sent with keyword arguments only")
            enqueue_after_commit(session, failed.task_name, **kwargs)
        await record_audit(
            session,
            action="admin.failed_job_retry",
            actor_id=actor_id,
            target_type="failed_job",
            target_id=failed.id,
            details=details,
        )

    async def _retry_result(self, session: AsyncSession, failed: FailedJob) -> FailedJobRetryOut:
        charged = 0
        if failed.task_name == SEND_EMAIL_TASK:
            delta = await session.scalar(
                select(LedgerEntry.delta).where(
                    LedgerEntry.idempotency_key == _retry_charge_key(failed.id)
                )
            )
            charged = -(delta or 0)
        return FailedJobRetryOut(
            failed_job=FailedJobOut.model_validate(failed),
            action="send_rescheduled" if failed.task_name == SEND_EMAIL_TASK else "job_enqueued",
            charged_credits=charged,
        )

    # -- overview ------------------------------------------------------------------------

    async def stats(self, session: AsyncSession, *, actor_id: uuid.UUID) -> AdminStats:
        """Counts an operator watches: users, mailboxes, sends, failures, money, credits."""
        now = utcnow()
        today = datetime.combine(now.astimezone(UTC).date(), datetime.min.time(), tzinfo=UTC)
        month_ago = now - timedelta(days=30)
        captured = PaymentOrder.status.in_([PaymentOrderStatus.paid, PaymentOrderStatus.refunded])

        async def count(model: type[Base], *where: ColumnElement[bool]) -> int:
            statement = select(func.count()).select_from(model).where(*where)
            return int(await session.scalar(statement) or 0)

        async def total(column: InstrumentedAttribute[int], *where: ColumnElement[bool]) -> int:
            statement = select(func.coalesce(func.sum(column), 0)).where(*where)
            return int(await session.scalar(statement) or 0)

        revenue = await total(PaymentOrder.amount_paise, captured)
        refunded = await total(PaymentOrder.refunded_paise, captured)
        stats = AdminStats(
            generated_at=now,
            users=await count(User, ~deleted_user_clause()),
            deleted_users=await count(User, deleted_user_clause()),
            active_mailboxes=await count(Mailbox, Mailbox.status == MailboxStatus.active),
            emails_sent_today=await count(ScheduledEmail, ScheduledEmail.sent_at >= today),
            emails_sent_last_30_days=await count(
                ScheduledEmail, ScheduledEmail.sent_at >= month_ago
            ),
            failed_sends_last_30_days=await count(
                ScheduledEmail,
                ScheduledEmail.status == EmailStatus.failed,
                ScheduledEmail.updated_at >= month_ago,
            ),
            failed_jobs_open=await count(FailedJob, FailedJob.retried_at.is_(None)),
            payments_captured=await count(PaymentOrder, captured),
            revenue_paise=revenue,
            revenue_last_30_days_paise=await total(
                PaymentOrder.amount_paise, captured, PaymentOrder.paid_at >= month_ago
            ),
            refunded_paise=refunded,
            net_revenue_paise=revenue - refunded,
            credits_outstanding=await total(CreditAccount.balance),
        )
        await record_audit(session, action="admin.stats_viewed", actor_id=actor_id)
        return stats

    async def list_campaigns(
        self,
        session: AsyncSession,
        *,
        actor_id: uuid.UUID,
        pagination: Pagination,
        status: CampaignStatus | None,
        user_id: uuid.UUID | None,
    ) -> tuple[list[tuple[Campaign, str]], str | None]:
        """Every user's campaigns, newest first, with the owner's email (audited)."""
        statement = select(Campaign)
        if status is not None:
            statement = statement.where(Campaign.status == status)
        if user_id is not None:
            statement = statement.where(Campaign.user_id == user_id)
        campaigns, cursor = await paginate(
            session, statement, pagination, created_at=Campaign.created_at, id_column=Campaign.id
        )
        owners = await session.execute(
            select(User.id, User.email).where(User.id.in_({c.user_id for c in campaigns}))
        )
        emails: dict[uuid.UUID, str] = dict(owners.all())
        await record_audit(
            session,
            action="admin.campaigns_viewed",
            actor_id=actor_id,
            details={
                "status": status.value if status else None,
                "user_id": str(user_id) if user_id else None,
            },
        )
        return [(c, emails[c.user_id]) for c in campaigns], cursor


admin_service = AdminService()
