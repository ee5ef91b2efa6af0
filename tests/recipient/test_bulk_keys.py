"""One bulk job per user and idempotency key at the service level (jobs, pages,
workflows, racing requests: no HTTP idempotency layer in front), and a settlement
that refunds at most what the job's own debit took. Money is checked exactly: the
balance, and the ledger's sum equal to it."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.credits.service import credit_service
from outreach.kit.db import Database
from outreach.models import LedgerEntry, User, VerificationJob
from outreach.recipient import enrichment as enrichment_module
from outreach.recipient import verification as verification_module
from outreach.recipient.bulk_charge import BulkKeyUsed
from outreach.recipient.enrichment import enrichment_service
from outreach.recipient.verification import verification_service
from tests.conftest import create_user

FIVE = [f"u{i}@acme.test" for i in range(5)]
# More companies than run inside the request (5), so the job is queued, not run.
SEVEN = [{"name": f"Company {i}", "domain": f"c{i}.test"} for i in range(7)]
HELD_PER_COMPANY = 3 * 2  # OUTREACH_ENRICH_MAX_CANDIDATES x 2 credits per address found


@pytest.fixture
def enqueued(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The jobs the services queue (recorded, not run: each test settles by hand)."""
    jobs: list[str] = []

    def record(session: AsyncSession, name: str, **kwargs: Any) -> None:
        jobs.append(kwargs["job_id"])

    monkeypatch.setattr(verification_module, "enqueue_after_commit", record)
    monkeypatch.setattr(enrichment_module, "enqueue_after_commit", record)
    return jobs


async def ledger_sum(session: AsyncSession, user_id: uuid.UUID) -> int:
    total = await session.scalar(
        select(func.coalesce(func.sum(LedgerEntry.delta), 0)).where(LedgerEntry.user_id == user_id)
    )
    return int(total or 0)


async def assert_money(session: AsyncSession, user: User, expected: int) -> None:
    balance = await credit_service.get_balance(session, user_id=user.id)
    assert balance == expected
    assert await ledger_sum(session, user.id) == balance


async def verify(session: AsyncSession, user: User, key: str, emails: list[str] = FIVE) -> Any:
    return await verification_service.start_bulk(
        session, user_id=user.id, list_id=None, emails=emails, idempotency_key=key
    )


async def enrich(
    session: AsyncSession, user: User, key: str, companies: list[dict[str, Any]] = SEVEN
) -> Any:
    return await enrichment_service.start_bulk(
        session,
        user_id=user.id,
        companies=companies,
        list_id=None,
        add_to_list_id=None,
        idempotency_key=key,
    )


async def test_verify_twice_with_one_key_is_one_job_charged_and_refunded_once(
    database: Database, session: AsyncSession, enqueued: list[str]
) -> None:
    user = await create_user(session, "ada@example.com", balance=100)
    first = await verify(session, user, "k1")
    again = await verify(session, user, "k1")
    other_list = await verify(session, user, "k1", emails=FIVE[:2])  # same key, other input
    await session.flush()

    assert again.id == first.id == other_list.id
    assert enqueued == [str(first.id)]
    assert await session.scalar(select(func.count()).select_from(VerificationJob)) == 1
    await assert_money(session, user, 100 - 5)

    # Nothing was checked: settling refunds all 5, once, however often it is asked.
    for job in (first, again, other_list, first):
        await verification_service.finish_bulk_run(database, job_id=job.id)
    await assert_money(session, user, 100)
    await session.refresh(first)
    assert (first.credits_charged, first.credits_refunded) == (5, 5)


async def test_verify_with_another_key_is_another_job(
    database: Database, session: AsyncSession, enqueued: list[str]
) -> None:
    user = await create_user(session, "ada@example.com", balance=100)
    first = await verify(session, user, "k1")
    second = await verify(session, user, "k2", emails=FIVE[:3])
    await session.flush()
    assert first.id != second.id
    assert enqueued == [str(first.id), str(second.id)]
    await assert_money(session, user, 100 - 5 - 3)
    await verification_service.finish_bulk_run(database, job_id=second.id)
    await assert_money(session, user, 100 - 5)  # the second job's 3, not more
    await verification_service.finish_bulk_run(database, job_id=first.id)
    await assert_money(session, user, 100)


async def test_the_same_key_of_another_user_is_theirs(
    session: AsyncSession, enqueued: list[str]
) -> None:
    ada = await create_user(session, "ada@example.com", balance=10)
    bob = await create_user(session, "bob@example.com", balance=10)
    assert (await verify(session, ada, "k")).id != (await verify(session, bob, "k")).id
    await assert_money(session, ada, 5)
    await assert_money(session, bob, 5)


async def test_a_job_whose_debit_paid_for_another_job_is_refunded_nothing(
    database: Database, session: AsyncSession, enqueued: list[str]
) -> None:
    """What the bug left behind: a second job whose debit was a replay of the first
    one's (no key of its own, as the migration leaves it), and a job whose key names a
    debit that paid for another job. Neither is refunded; the first job still gets
    its own refund, once."""
    user = await create_user(session, "ada@example.com", balance=100)
    first = await verify(session, user, "k1")
    await credit_service.apply_ledger_entry(
        session,
        user_id=user.id,
        delta=-5,
        reason="enrich",
        ref=f"enrich_job:{uuid.uuid4()}",
        idempotency_key=f"enrich:bulk:{user.id}:e",
    )
    await session.flush()
    orphans = [
        VerificationJob(
            id=uuid.uuid4(),
            user_id=user.id,
            kind="verify",
            status="queued",
            total=5,
            credits_charged=5,
            counts={},
            input={},
            results=[],
            charge_key=None,
        ),
        VerificationJob(
            id=uuid.uuid4(),
            user_id=user.id,
            kind="enrich",
            status="queued",
            total=1,
            credits_charged=5,
            counts={},
            input={"companies": [], "add_to_list_id": None},
            results=[],
            charge_key=f"enrich:bulk:{user.id}:e",
        ),
    ]
    session.add_all(orphans)
    await session.flush()
    await verification_service.finish_bulk_run(database, job_id=orphans[0].id)
    await enrichment_service.settle_bulk_run(database, job_id=orphans[1].id)
    await assert_money(session, user, 90)
    for orphan in orphans:
        await session.refresh(orphan)
        assert (orphan.status, orphan.credits_charged, orphan.credits_refunded) == (
            "completed",
            0,
            0,
        )
    await verification_service.finish_bulk_run(database, job_id=first.id)
    await assert_money(session, user, 95)


async def test_a_key_whose_debit_has_no_job_is_a_conflict(
    session: AsyncSession, enqueued: list[str]
) -> None:
    """A key used before jobs recorded their key: its debit names a job that holds no
    key. The call is refused, charging nothing."""
    user = await create_user(session, "ada@example.com", balance=100)
    await credit_service.apply_ledger_entry(
        session,
        user_id=user.id,
        delta=-5,
        reason="verify",
        ref=f"verification_job:{uuid.uuid4()}",
        idempotency_key=f"verify:bulk:{user.id}:old",
    )
    with pytest.raises(BulkKeyUsed):
        await verify(session, user, "old")
    await assert_money(session, user, 95)
    assert enqueued == []


async def test_enrich_twice_with_one_key_is_one_job_charged_and_refunded_once(
    database: Database, session: AsyncSession, enqueued: list[str]
) -> None:
    user = await create_user(session, "ada@example.com", balance=100)
    held = len(SEVEN) * HELD_PER_COMPANY
    first = await enrich(session, user, "e1")
    again = await enrich(session, user, "e1", companies=SEVEN[:6])
    other = await enrich(session, user, "e2", companies=SEVEN[:6])
    await session.flush()
    assert again.id == first.id != other.id
    assert enqueued == [str(first.id), str(other.id)]
    await assert_money(session, user, 100 - held - 6 * HELD_PER_COMPANY)
    for job_id in (first.id, again.id, other.id, first.id):
        await enrichment_service.settle_bulk_run(database, job_id=job_id)
    await assert_money(session, user, 100)  # nothing found: every hold given back, once


async def test_small_enrichment_settled_in_the_request_is_not_settled_again(
    database: Database, session: AsyncSession, enqueued: list[str], rapp: Any
) -> None:
    """At most 5 companies run inside the call and are settled there: the same key
    again returns that completed job, with no second hold and no second refund."""
    user = await create_user(session, "ada@example.com", balance=100)
    two = SEVEN[:2]  # no mail domain on the fake DNS server: nothing found
    first = await enrich(session, user, "small", companies=two)
    assert first.status == "completed"
    again = await enrich(session, user, "small", companies=two)
    assert again.id == first.id
    assert enqueued == []
    await assert_money(session, user, 100)
    assert (first.credits_charged, first.credits_refunded) == (12, 12)


async def test_concurrent_calls_with_one_key_make_one_job(
    committing_database: Database, enqueued: list[str]
) -> None:
    """Ten calls with one key, each in its own transaction (on PostgreSQL they race:
    the ledger's unique key lets one debit in, the others wait for it and answer with
    its job). Some ask for fewer addresses: they get the winner's job all the same."""
    async with committing_database.session() as session:
        user = await create_user(session, "race@example.com", balance=100)

    async def call(index: int) -> tuple[uuid.UUID, int]:
        async with committing_database.session() as session:
            job = await verify(session, user, "race", emails=FIVE[: 3 + index % 3])
            return job.id, job.credits_charged

    answers = await asyncio.gather(*(call(i) for i in range(10)))
    assert len(set(answers)) == 1
    job_id, charged = answers[0]
    assert charged in (3, 4, 5)
    assert enqueued == [str(job_id)]
    async with committing_database.session() as session:
        assert await session.scalar(select(func.count()).select_from(VerificationJob)) == 1
        await assert_money(session, user, 100 - charged)

    await asyncio.gather(
        *(verification_service.finish_bulk_run(committing_database, job_id=job_id) for _ in "ab")
    )
    async with committing_database.session() as session:
        await assert_money(session, user, 100)
        entries = await session.scalars(
            select(LedgerEntry.delta)
            .where(LedgerEntry.ref == f"verification_job:{job_id}")
            .order_by(LedgerEntry.delta)
        )
        assert list(entries) == [-charged, charged]  # one debit, one refund


async def test_concurrent_enrichments_with_one_key_hold_once(
    committing_database: Database, enqueued: list[str]
) -> None:
    async with committing_database.session() as session:
        user = await create_user(session, "race@example.com", balance=100)

    async def call() -> uuid.UUID:
        async with committing_database.session() as session:
            job = await enrich(session, user, "race")
            return job.id

    ids = set(await asyncio.gather(*(call() for _ in range(6))))
    assert len(ids) == 1
    (job_id,) = ids
    async with committing_database.session() as session:
        await assert_money(session, user, 100 - len(SEVEN) * HELD_PER_COMPANY)
    await enrichment_service.settle_bulk_run(committing_database, job_id=job_id)
    async with committing_database.session() as session:
        await assert_money(session, user, 100)
