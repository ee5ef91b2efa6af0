"""The ledger: one function, exact balances, no negatives, replays return the first entry."""

import asyncio
import uuid

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.credits.service import InsufficientCredits, LedgerKeyReused, credit_service
from outreach.kit.db import Database
from outreach.models import CreditAccount, LedgerEntry
from tests.conftest import create_user


async def ledger_sum(session: AsyncSession, user_id: uuid.UUID) -> int:
    total = await session.scalar(
        select(func.coalesce(func.sum(LedgerEntry.delta), 0)).where(LedgerEntry.user_id == user_id)
    )
    return int(total or 0)


class TestApplyLedgerEntry:
    async def test_grant_then_debit(self, session: AsyncSession) -> None:
        user = await create_user(session, "a@example.com", balance=10)
        entry = await credit_service.apply_ledger_entry(
            session, user_id=user.id, delta=-3, reason="verify", ref="x", idempotency_key="d1"
        )
        assert entry.balance_after == 7
        assert await credit_service.get_balance(session, user_id=user.id) == 7
        assert await ledger_sum(session, user.id) == 7

    async def test_short_balance_is_402_and_changes_nothing(self, session: AsyncSession) -> None:
        user = await create_user(session, "a@example.com", balance=2)
        with pytest.raises(InsufficientCredits) as caught:
            await credit_service.apply_ledger_entry(
                session, user_id=user.id, delta=-3, reason="verify", ref=None, idempotency_key="d"
            )
        assert caught.value.status == 402
        assert caught.value.extra == {"required": 3, "available": 2}
        assert await credit_service.get_balance(session, user_id=user.id) == 2
        assert (
            await session.scalar(
                select(func.count())
                .select_from(LedgerEntry)
                .where(LedgerEntry.idempotency_key == "d")
            )
            == 0
        )

    async def test_replay_returns_the_first_entry_even_when_now_short(
        self, session: AsyncSession
    ) -> None:
        user = await create_user(session, "a@example.com", balance=5)
        first = await credit_service.apply_ledger_entry(
            session, user_id=user.id, delta=-5, reason="verify", ref=None, idempotency_key="k"
        )
        again = await credit_service.apply_ledger_entry(
            session, user_id=user.id, delta=-5, reason="verify", ref=None, idempotency_key="k"
        )
        assert again.id == first.id
        assert await credit_service.get_balance(session, user_id=user.id) == 0

    async def test_key_reused_for_another_amount_is_refused(self, session: AsyncSession) -> None:
        user = await create_user(session, "a@example.com", balance=5)
        await credit_service.apply_ledger_entry(
            session, user_id=user.id, delta=-1, reason="verify", ref=None, idempotency_key="k"
        )
        with pytest.raises(LedgerKeyReused):
            await credit_service.apply_ledger_entry(
                session, user_id=user.id, delta=-2, reason="verify", ref=None, idempotency_key="k"
            )

    async def test_a_key_longer_than_the_column_is_stored_as_its_digest(
        self, session: AsyncSession
    ) -> None:
        # A scope plus a client's 255-character Idempotency-Key: PostgreSQL refused it.
        user = await create_user(session, "a@example.com", balance=5)
        long_key = f"verify:single:{user.id}:" + "k" * 255
        first = await credit_service.apply_ledger_entry(
            session, user_id=user.id, delta=-1, reason="verify", ref=None, idempotency_key=long_key
        )
        again = await credit_service.apply_ledger_entry(
            session, user_id=user.id, delta=-1, reason="verify", ref=None, idempotency_key=long_key
        )
        other = await credit_service.apply_ledger_entry(
            session,
            user_id=user.id,
            delta=-1,
            reason="verify",
            ref=None,
            idempotency_key=long_key[:-1] + "x",
        )
        assert again.id == first.id != other.id
        assert len(first.idempotency_key) == 300
        assert first.idempotency_key.startswith(f"verify:single:{user.id}:kkk")
        assert await credit_service.get_balance(session, user_id=user.id) == 3

    async def test_account_is_opened_on_first_entry(self, session: AsyncSession) -> None:
        user = await create_user(session, "a@example.com")
        await session.execute(CreditAccount.__table__.delete())
        entry = await credit_service.apply_ledger_entry(
            session, user_id=user.id, delta=4, reason="admin_grant", ref=None, idempotency_key="g"
        )
        assert entry.balance_after == 4


operations = st.lists(
    st.tuples(st.integers(min_value=-30, max_value=30), st.integers(min_value=0, max_value=8)),
    min_size=1,
    max_size=25,
)


@hypothesis_settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=operations)
async def test_balance_always_equals_sum_of_entries_and_never_negative(
    database: Database, ops: list[tuple[int, int]]
) -> None:
    async with database.sessionmaker() as session, session.begin_nested() as savepoint:
        user = await create_user(session, f"{uuid.uuid4().hex}@example.com")
        expected = await credit_service.get_balance(session, user_id=user.id)
        applied: dict[int, int] = {}
        for delta, key in ops:
            if delta == 0:
                continue
            idempotency_key = f"{user.id}:{key}"
            try:
                entry = await credit_service.apply_ledger_entry(
                    session,
                    user_id=user.id,
                    delta=delta,
                    reason="verify",
                    ref=None,
                    idempotency_key=idempotency_key,
                )
            except InsufficientCredits:
                assert expected + delta < 0
                continue
            except LedgerKeyReused:
                assert key in applied
                assert applied[key] != delta
                continue
            if key in applied:
                assert entry.delta == applied[key]  # a replay: nothing moved
            else:
                applied[key] = delta
                expected += delta
                assert entry.balance_after == expected
            balance = await credit_service.get_balance(session, user_id=user.id)
            assert balance == expected == await ledger_sum(session, user.id)
            assert balance >= 0
        await savepoint.rollback()


class TestConcurrency:
    async def test_200_concurrent_debits_against_100_credits(
        self, committing_database: Database
    ) -> None:
        async with committing_database.session() as session:
            user = await create_user(session, "race@example.com", balance=100)

        async def debit(index: int) -> str:
            try:
                async with committing_database.session() as session:
                    await credit_service.apply_ledger_entry(
                        session,
                        user_id=user.id,
                        delta=-1,
                        reason="verify",
                        ref=None,
                        idempotency_key=f"race:{index}",
                    )
            except InsufficientCredits:
                return "402"
            return "ok"

        results = await asyncio.gather(*(debit(i) for i in range(200)))
        assert results.count("ok") == 100
        assert results.count("402") == 100
        async with committing_database.session() as session:
            assert await credit_service.get_balance(session, user_id=user.id) == 0
            assert await ledger_sum(session, user.id) == 0

    async def test_50_concurrent_replays_of_one_key_make_one_entry(
        self, committing_database: Database
    ) -> None:
        async with committing_database.session() as session:
            user = await create_user(session, "replay@example.com", balance=100)

        async def debit() -> uuid.UUID:
            async with committing_database.session() as session:
                entry = await credit_service.apply_ledger_entry(
                    session,
                    user_id=user.id,
                    delta=-7,
                    reason="verify",
                    ref=None,
                    idempotency_key="one-key",
                )
                return entry.id

        ids = await asyncio.gather(*(debit() for _ in range(50)))
        assert len(set(ids)) == 1
        async with committing_database.session() as session:
            assert await credit_service.get_balance(session, user_id=user.id) == 93
            count = await session.scalar(
                select(func.count())
                .select_from(LedgerEntry)
                .where(LedgerEntry.idempotency_key == "one-key")
            )
            assert count == 1
