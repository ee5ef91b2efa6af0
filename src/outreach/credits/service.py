"""The credit ledger. :func:`CreditService.apply_ledger_entry` is the one way a
balance changes: the balance always equals the sum of the user's entries and
never goes below zero, and an idempotency key makes each entry happen once."""

from __future__ import annotations

import uuid

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.kit.clock import utcnow
from outreach.kit.db import dialect_insert
from outreach.kit.errors import Conflict, PaymentRequired
from outreach.kit.pagination import Pagination, paginate
from outreach.models import CreditAccount, LedgerEntry


class InsufficientCredits(PaymentRequired):
    code, title = "insufficient_credits", "Not enough credits"


class LedgerKeyReused(Conflict):
    code, title = "idempotency_key_reused", "Ledger idempotency key used for another entry"


class CreditService:
    async def open_account(self, session: AsyncSession, *, user_id: uuid.UUID) -> None:
        """Create the user's (empty) account if it does not exist yet."""
        await session.execute(
            dialect_insert(session)(CreditAccount)
            .values(user_id=user_id, balance=0)
            .on_conflict_do_nothing(index_elements=["user_id"])
        )

    async def get_balance(self, session: AsyncSession, *, user_id: uuid.UUID) -> int:
        balance = await session.scalar(
            select(CreditAccount.balance).where(CreditAccount.user_id == user_id)
        )
        return balance or 0

    async def apply_ledger_entry(
        self,
        session: AsyncSession,
        *,
        user_id: uuid.UUID,
        delta: int,
        reason: str,
        ref: str | None,
        idempotency_key: str,
    ) -> LedgerEntry:
        """Apply ``delta`` to the user's balance once per ``idempotency_key``.

        Inside a savepoint of the caller's transaction: the key is claimed first
        (``INSERT … ON CONFLICT DO NOTHING``), so a replay returns the first entry
        even when the balance is now too low; then a guarded ``UPDATE … WHERE
        balance + delta >= 0``. Raises :class:`InsufficientCredits` (402) and
        changes nothing when the balance is short.
        """
        async with session.begin_nested():
            claimed = await session.scalar(
                dialect_insert(session)(LedgerEntry)
                .values(
                    id=uuid.uuid4(),
                    created_at=utcnow(),
                    user_id=user_id,
                    delta=delta,
                    reason=reason,
                    ref=ref,
                    idempotency_key=idempotency_key,
                    balance_after=0,
                )
                .on_conflict_do_nothing(index_elements=["idempotency_key"])
                .returning(LedgerEntry.id)
            )
            if claimed is None:
                return await self._replay(session, user_id, delta, idempotency_key)
            balance = await self._move_balance(session, user_id, delta)
            if balance is None:
                available = await self.get_balance(session, user_id=user_id)
                raise InsufficientCredits(
                    f"this needs {-delta} credits and you have {available}",
                    required=-delta,
                    available=available,
                )
            await session.execute(
                update(LedgerEntry).where(LedgerEntry.id == claimed).values(balance_after=balance)
            )
        entry = await session.get(LedgerEntry, claimed, populate_existing=True)
        assert entry is not None
        return entry

    async def _move_balance(
        self, session: AsyncSession, user_id: uuid.UUID, delta: int
    ) -> int | None:
        statement = (
            update(CreditAccount)
            .where(CreditAccount.user_id == user_id, CreditAccount.balance + delta >= 0)
            .values(balance=CreditAccount.balance + delta, updated_at=utcnow())
            .returning(CreditAccount.balance)
            .execution_options(synchronize_session=False)
        )
        balance = await session.scalar(statement)
        if balance is None and await session.get(CreditAccount, user_id) is None:
            await self.open_account(session, user_id=user_id)
            balance = await session.scalar(statement)
        return balance

    async def _replay(
        self, session: AsyncSession, user_id: uuid.UUID, delta: int, key: str
    ) -> LedgerEntry:
        entry = await session.scalar(select(LedgerEntry).where(LedgerEntry.idempotency_key == key))
        assert entry is not None
        if entry.user_id != user_id or entry.delta != delta:
            raise LedgerKeyReused(f"ledger key {key!r} already names another entry")
        return entry

    async def list_entries(
        self,
        session: AsyncSession,
        *,
        user_id: uuid.UUID,
        pagination: Pagination,
        reason: str | None = None,
    ) -> tuple[list[LedgerEntry], str | None]:
        statement = select(LedgerEntry).where(LedgerEntry.user_id == user_id)
        if reason is not None:
            statement = statement.where(LedgerEntry.reason == reason)
        return await paginate(
            session,
            statement,
            pagination,
            created_at=LedgerEntry.created_at,
            id_column=LedgerEntry.id,
        )


credit_service = CreditService()
