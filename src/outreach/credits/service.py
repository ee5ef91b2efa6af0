"""The credit ledger. :func:`CreditService.apply_ledger_entry` is the one way a
balance changes: the balance always equals the sum of the user's entries and
never goes below zero, and an idempotency key makes each entry happen once."""

from __future__ import annotations

import hashlib
import uuid
from typing import cast

from sqlalchemy import String, Table, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.kit import metrics
from outreach.kit.clock import utcnow
from outreach.kit.db import dialect_insert
from outreach.kit.errors import Conflict, PaymentRequired
from outreach.kit.pagination import Pagination, paginate
from outreach.models import CreditAccount, LedgerEntry, LedgerReason


class InsufficientCredits(PaymentRequired):
    code, title = "insufficient_credits", "Not enough credits"


class LedgerKeyReused(Conflict):
    code, title = "idempotency_key_reused", "Ledger idempotency key used for another entry"


# Table-level statements on the hot path: the same SQL as the ORM would send,
# for a fraction of the Python work (bench/credits_debit.py measures it).
_ledger = cast(Table, LedgerEntry.__table__)
_accounts = cast(Table, CreditAccount.__table__)
_ENTRY_COLUMNS = [column.key for column in _ledger.columns]
_KNOWN_REASONS = frozenset(LedgerReason)
_KEY_LENGTH = cast(String, _ledger.c.idempotency_key.type).length or 300
_DIGEST_MARK = "~sha256:"


def ledger_key(idempotency_key: str) -> str:
    """The key as stored: a scope plus a client's ``Idempotency-Key`` (up to 255
    characters) can outgrow the column, so a long key keeps a readable start and
    ends with the SHA-256 of the whole, still unique and the same on every retry."""
    if len(idempotency_key) <= _KEY_LENGTH:
        return idempotency_key
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()
    start = idempotency_key[: _KEY_LENGTH - len(_DIGEST_MARK) - len(digest)]
    return f"{start}{_DIGEST_MARK}{digest}"


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

        The common path is two statements, as cheap as hand-written SQL: a
        guarded ``UPDATE … WHERE balance + delta >= 0 RETURNING balance`` and an
        ``INSERT … ON CONFLICT (idempotency_key) DO NOTHING``. When the key was
        already used, the balance move is undone in the same transaction and the
        first entry is returned, even when the balance is now too low. A short
        balance raises :class:`InsufficientCredits` (402) having written
        nothing, so a caller may catch it and carry on.
        """
        idempotency_key = ledger_key(idempotency_key)
        balance = await self._move_balance(session, user_id, delta)
        if balance is None:
            replayed = await self._find_entry(session, idempotency_key)
            if replayed is not None:
                return self._check_replay(replayed, user_id, delta)
            available = await self.get_balance(session, user_id=user_id)
            raise InsufficientCredits(
                f"this needs {-delta} credits and you have {available}",
                required=-delta,
                available=available,
            )
        entry = LedgerEntry(
            id=uuid.uuid4(),
            created_at=utcnow(),
            user_id=user_id,
            delta=delta,
            reason=reason,
            ref=ref,
            idempotency_key=idempotency_key,
            balance_after=balance,
        )
        inserted = await session.scalar(
            dialect_insert(session)(_ledger)
            .values({column: getattr(entry, column) for column in _ENTRY_COLUMNS})
            .on_conflict_do_nothing(index_elements=["idempotency_key"])
            .returning(_ledger.c.id)
        )
        if inserted is None:
            # The key was used before (or by a concurrent request that committed
            # first): put the balance back and answer with the first entry.
            await session.execute(
                update(_accounts)
                .where(_accounts.c.user_id == user_id)
                .values(balance=_accounts.c.balance - delta)
            )
            replayed = await self._find_entry(session, idempotency_key)
            assert replayed is not None
            return self._check_replay(replayed, user_id, delta)
        _count_entry(session, reason, delta)
        return entry

    async def find_entry(
        self, session: AsyncSession, *, idempotency_key: str
    ) -> LedgerEntry | None:
        """The entry applied under ``idempotency_key`` (as given to
        :meth:`apply_ledger_entry`), or None when the key was never used."""
        return await self._find_entry(session, ledger_key(idempotency_key))

    async def debited(
        self, session: AsyncSession, *, user_id: uuid.UUID, idempotency_key: str | None, ref: str
    ) -> int:
        """The credits that the debit applied under ``idempotency_key`` took for ``ref``:
        the most a refund of ``ref`` may give back. 0 when there is no such debit, or
        when the key's entry was applied for another ``ref`` (a replayed debit paid for
        something else), so a refund can never hand out credits nobody paid."""
        if idempotency_key is None:
            return 0
        entry = await self.find_entry(session, idempotency_key=idempotency_key)
        if entry is None or entry.user_id != user_id or entry.ref != ref or entry.delta > 0:
            return 0
        return -entry.delta

    async def _move_balance(
        self, session: AsyncSession, user_id: uuid.UUID, delta: int
    ) -> int | None:
        statement = (
            update(_accounts)
            .where(_accounts.c.user_id == user_id, _accounts.c.balance + delta >= 0)
            .values(balance=_accounts.c.balance + delta, updated_at=utcnow())
            .returning(_accounts.c.balance)
        )
        balance: int | None = await session.scalar(statement)
        if balance is None and await session.get(CreditAccount, user_id) is None:
            await self.open_account(session, user_id=user_id)
            balance = await session.scalar(statement)
        return balance

    async def _find_entry(self, session: AsyncSession, key: str) -> LedgerEntry | None:
        return await session.scalar(select(LedgerEntry).where(LedgerEntry.idempotency_key == key))

    def _check_replay(self, entry: LedgerEntry, user_id: uuid.UUID, delta: int) -> LedgerEntry:
        if entry.user_id != user_id or entry.delta != delta:
            raise LedgerKeyReused(f"ledger key {entry.idempotency_key!r} names another entry")
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


def _count_entry(session: AsyncSession, reason: str, delta: int) -> None:
    """Credits moved, by reason, counted once the entry is committed."""
    label = reason if reason in _KNOWN_REASONS else "other"
    if delta < 0:
        metrics.count_after_commit(session, metrics.CREDITS_DEBITED.labels(label), -delta)
    elif delta > 0:
        metrics.count_after_commit(session, metrics.CREDITS_CREDITED.labels(label), delta)


credit_service = CreditService()
