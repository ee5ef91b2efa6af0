"""Operator actions on users, credits and the audit trail."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.credits.service import credit_service
from outreach.kit.audit import record_audit
from outreach.kit.errors import Unprocessable
from outreach.kit.pagination import Pagination, paginate
from outreach.models import AuditLog, CreditAccount, LedgerEntry, LedgerReason, User


class ZeroGrant(Unprocessable):
    code, title = "zero_grant", "A credit grant must change the balance"


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


admin_service = AdminService()
