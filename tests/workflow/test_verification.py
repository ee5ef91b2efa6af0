"""Bulk verification as a checkpointed graph: a run that crashes resumes at the next
batch, never checking a stored batch again and never charging or refunding twice.

The DNS cache is off (TTL 0), so every check of an address shows as a query on the
fake DNS server; each address has its own domain, so a domain's queries count the
checks of its address."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.config import Settings
from outreach.credits.service import credit_service
from outreach.kit.db import Database
from outreach.models import EmailVerification, FailedJob, LedgerEntry, User, VerificationJob
from outreach.recipient.verification import verification_service
from outreach.workflow.checkpoint import open_checkpointer
from outreach.workflow.verification import run_verification_job
from tests.conftest import create_user, sign_in, wait_for_jobs
from tests.fakes.dns import FakeDNS

DOMAINS = [f"d{i:02d}.test" for i in range(14)]
# In domain order, as the job reads them, in batches of 3: a00-a02, a03-a05, a06-a08,
# a09-a11, then a12, a13 and the address whose DNS fails (unknown, so refunded).
EMAILS = [f"a{i:02d}@{domain}" for i, domain in enumerate(DOMAINS)] + ["zz@zz-broken.test"]


class Crash(RuntimeError):
    """Stands for the process dying at that point."""


@pytest.fixture
def zone(fake_dns: FakeDNS) -> FakeDNS:
    for domain in DOMAINS:
        fake_dns.add_mx(domain, f"mx.{domain}")
    fake_dns.fail("zz-broken.test")
    return fake_dns


def mx_queries(dns: FakeDNS, batch: int) -> list[int]:
    """MX queries received for the domains of the addresses in ``batch`` (1-based)."""
    return [dns.queries[(domain, "MX")] for domain in DOMAINS[(batch - 1) * 3 : batch * 3]]


def crash_once(
    monkeypatch: pytest.MonkeyPatch, name: str, *, on_call: int, after: bool = False
) -> list[int]:
    """Make ``verification_service.<name>`` raise on its ``on_call``-th call, before its
    work (or, with ``after``, once its work is committed); ``on_call=-1`` only counts.
    Returns the call counter."""
    real: Callable[..., Awaitable[Any]] = getattr(verification_service, name)
    calls = [0]

    async def crashing(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == on_call and not after:
            raise Crash(f"{name} call {on_call}")
        result = await real(*args, **kwargs)
        if calls[0] == on_call:
            raise Crash(f"after {name} call {on_call}")
        return result

    monkeypatch.setattr(verification_service, name, crashing)
    return calls


def assert_checked_once_after_resume(dns: FakeDNS, *, next_batch: int) -> None:
    """The batches after the crash are checked once by the resumed run. The crashed run
    had already started the DNS lookups of the batch after it (read ahead while a
    batch is stored); a query it sent may reach the server after the crash, so that
    batch counts one or two."""
    assert all(count in (1, 2) for count in mx_queries(dns, next_batch))
    assert mx_queries(dns, next_batch + 1) == [1, 1]


async def start_job(session: AsyncSession, user: User) -> uuid.UUID:
    job = await verification_service.start_bulk(
        session, user_id=user.id, list_id=None, emails=EMAILS, idempotency_key="bulk"
    )
    await session.flush()
    return job.id


async def checkpoint_values(job_id: uuid.UUID) -> tuple[dict[str, Any], tuple[str, ...]] | None:
    from outreach.workflow.verification import verification_graph

    async with open_checkpointer() as saver:
        graph = verification_graph.compile(checkpointer=saver)
        snapshot = await graph.aget_state({"configurable": {"thread_id": str(job_id)}})
    if not snapshot.values:
        return None
    return dict(snapshot.values), tuple(snapshot.next)


async def ledger(session: AsyncSession, job_id: uuid.UUID) -> list[int]:
    rows = await session.scalars(
        select(LedgerEntry.delta)
        .where(LedgerEntry.ref == f"verification_job:{job_id}")
        .order_by(LedgerEntry.created_at, LedgerEntry.delta)
    )
    return list(rows)


async def assert_finished_exactly_once(
    session: AsyncSession, user: User, job_id: uuid.UUID, *, balance_before: int
) -> None:
    job = await session.get(VerificationJob, job_id, populate_existing=True)
    assert job is not None
    assert (job.status, job.done, job.total) == ("completed", 15, 15)
    assert job.counts == {"deliverable": 14, "unknown": 1}
    assert (job.credits_charged, job.credits_refunded) == (15, 1)
    assert await ledger(session, job_id) == [-15, 1]
    assert await credit_service.get_balance(session, user_id=user.id) == balance_before - 14
    statuses = await session.execute(
        select(EmailVerification.status, func.count())
        .where(EmailVerification.job_id == job_id)
        .group_by(EmailVerification.status)
    )
    assert dict(statuses.all()) == {"deliverable": 14, "unknown": 1}
    assert await checkpoint_values(job_id) is None  # a finished run leaves no checkpoint


async def test_a_crash_inside_a_batch_resumes_at_that_batch(
    run_settings: Settings,
    zone: FakeDNS,
    database: Database,
    session: AsyncSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    user = await create_user(session, "ada@example.com", balance=40)
    job_id = await start_job(session, user)
    stores = crash_once(monkeypatch, "_store_batch", on_call=3)

    with pytest.raises(Crash):
        await run_verification_job(database, job_id=job_id)

    job = await session.get(VerificationJob, job_id, populate_existing=True)
    assert job is not None
    assert (job.status, job.done) == ("running", 6)
    saved = await checkpoint_values(job_id)
    assert saved is not None
    values, next_steps = saved
    assert (values["done"], values["cursor"], next_steps) == (6, "a05@d05.test", ("verify_batch",))
    assert mx_queries(zone, 1) == mx_queries(zone, 2) == mx_queries(zone, 3) == [1, 1, 1]
    zone.queries.clear()
    starts = crash_once(monkeypatch, "begin_bulk_run", on_call=-1)  # never crashes: counts

    await run_verification_job(database, job_id=job_id)

    assert starts == [0]  # resumed at the checkpointed step, not started again
    assert mx_queries(zone, 1) == mx_queries(zone, 2) == [0, 0, 0]  # stored: not checked again
    assert mx_queries(zone, 3) == [1, 1, 1]  # checked but never stored: checked again
    assert_checked_once_after_resume(zone, next_batch=4)
    assert stores[0] == 3 + 3  # batches 1-2, the crash, then batches 3-5
    await assert_finished_exactly_once(session, user, job_id, balance_before=40)


async def test_a_crash_between_the_commit_and_the_checkpoint_checks_nothing_twice(
    run_settings: Settings,
    zone: FakeDNS,
    database: Database,
    session: AsyncSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    user = await create_user(session, "ada@example.com", balance=40)
    job_id = await start_job(session, user)
    crash_once(monkeypatch, "verify_next_batch", on_call=3, after=True)

    with pytest.raises(Crash):
        await run_verification_job(database, job_id=job_id)

    job = await session.get(VerificationJob, job_id, populate_existing=True)
    assert job is not None
    assert job.done == 9
    saved = await checkpoint_values(job_id)
    assert saved is not None
    assert saved[0]["done"] == 6
    zone.queries.clear()

    await run_verification_job(database, job_id=job_id)

    for batch in (1, 2, 3):
        assert mx_queries(zone, batch) == [0, 0, 0]
    assert_checked_once_after_resume(zone, next_batch=4)
    await assert_finished_exactly_once(session, user, job_id, balance_before=40)


async def test_a_crash_while_settling_refunds_once(
    run_settings: Settings,
    zone: FakeDNS,
    database: Database,
    session: AsyncSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    user = await create_user(session, "ada@example.com", balance=40)
    job_id = await start_job(session, user)
    crash_once(monkeypatch, "finish_bulk_run", on_call=1, after=True)

    with pytest.raises(Crash):
        await run_verification_job(database, job_id=job_id)
    assert await ledger(session, job_id) == [-15, 1]  # refunded, but the step did not finish
    zone.queries.clear()

    await run_verification_job(database, job_id=job_id)

    assert zone.total_queries == 0
    await assert_finished_exactly_once(session, user, job_id, balance_before=40)


async def test_running_a_finished_job_again_does_nothing(
    run_settings: Settings, zone: FakeDNS, database: Database, session: AsyncSession
) -> None:
    user = await create_user(session, "ada@example.com", balance=40)
    job_id = await start_job(session, user)
    await run_verification_job(database, job_id=job_id)
    zone.queries.clear()

    await run_verification_job(database, job_id=job_id)
    await run_verification_job(database, job_id=uuid.uuid4())  # a job that does not exist

    assert zone.total_queries == 0
    await assert_finished_exactly_once(session, user, job_id, balance_before=40)


async def test_the_job_retried_after_a_crash_resumes_through_the_broker(
    run_settings: Settings,
    zone: FakeDNS,
    database: Database,
    session: AsyncSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.recipient.conftest import started_app

    crash_once(monkeypatch, "_store_batch", on_call=2)
    async for app in started_app(run_settings, database):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            me = await sign_in(client, "ada@example.com")
            response = await client.post(
                "/v1/verify/bulk", json={"emails": EMAILS}, headers={"Idempotency-Key": "k"}
            )
            assert response.status_code == 202, response.text
            await wait_for_jobs()
            job = (await client.get(f"/v1/verify/jobs/{response.json()['id']}")).json()
    user = await session.get(User, uuid.UUID(me["id"]))
    assert user is not None
    assert job["status"] == "completed"
    assert mx_queries(zone, 1) == [1, 1, 1]  # stored before the crash: checked once
    assert mx_queries(zone, 2) == [2, 2, 2]  # checked, crashed before storing, checked again
    assert all(zone.queries[(domain, "MX")] in (1, 2) for domain in DOMAINS)
    failed = await session.scalar(select(func.count()).select_from(FailedJob))
    assert failed == 0  # the retry finished the job
    await assert_finished_exactly_once(session, user, uuid.UUID(job["id"]), balance_before=20)


async def test_a_lookup_that_times_out_and_a_malformed_row_never_stall_the_batch(
    run_settings: Settings, zone: FakeDNS, database: Database, session: AsyncSession
) -> None:
    # Batches of 3 in domain order (a malformed row's "domain" is what follows its last
    # "@"): the malformed row and the silent domain share batch 3 with a06, and
    # addresses follow them.
    zone.drop("d05silent.test")
    emails = [*EMAILS[:6], "b@d05silent.test", "bad@@d05not-a-domain", *EMAILS[6:14]]
    user = await create_user(session, "ada@example.com", balance=40)
    job = await verification_service.start_bulk(
        session, user_id=user.id, list_id=None, emails=emails, idempotency_key="bad"
    )
    await session.flush()

    await run_verification_job(database, job_id=job.id)

    done = await session.get(VerificationJob, job.id, populate_existing=True)
    assert done is not None
    assert (done.status, done.done, done.total) == ("completed", 16, 16)
    assert done.counts == {"deliverable": 14, "unknown": 1, "undeliverable": 1}
    assert (done.credits_charged, done.credits_refunded) == (16, 1)
    assert await ledger(session, job.id) == [-16, 1]
    results = await session.execute(
        select(EmailVerification.email, EmailVerification.status, EmailVerification.reasons)
        .where(EmailVerification.job_id == job.id)
        .order_by(EmailVerification.email)
    )
    verdicts = {email: (status, reasons) for email, status, reasons in results.all()}
    assert verdicts.pop("b@d05silent.test") == ("unknown", ["dns_error"])
    assert verdicts.pop("bad@@d05not-a-domain") == ("undeliverable", ["invalid_syntax"])
    assert set(verdicts) == set(EMAILS[:14])
    assert all(verdict == ("deliverable", ["mx_found"]) for verdict in verdicts.values())
    assert zone.queries[("d05silent.test", "MX")] >= 1  # asked, never answered
    assert all(zone.queries[(domain, "MX")] == 1 for domain in DOMAINS)


async def test_addresses_sharing_a_verdict_get_each_their_own_result(
    run_settings: Settings, zone: FakeDNS, database: Database, session: AsyncSession
) -> None:
    # A run draws one verdict per domain and role flag and its addresses share it, over
    # many batches of 3: each stored result must still be what checking the address
    # alone gives, and a failing domain among them changes only its own addresses.
    zone.add_mx("mailinator.com", "mx.mailinator.com")  # disposable
    zone.add_mx("gmail.com", "mx.gmail.com")  # free mail
    locals_ = ["ann", "careers", "bob", "hr", "zed+tag", "jösé"]
    domains = ["d00.test", "mailinator.com", "gmail.com", "zz-broken.test"]
    emails = [f"{local}@{domain}" for domain in domains for local in locals_]
    emails += ['"john doe"@d00.test', "x@@d00.test"]  # malformed: stored as written
    user = await create_user(session, "ada@example.com", balance=40)
    job = await verification_service.start_bulk(
        session, user_id=user.id, list_id=None, emails=emails, idempotency_key="shared"
    )
    await session.flush()

    await run_verification_job(database, job_id=job.id)

    rows = await session.execute(
        select(
            EmailVerification.email,
            EmailVerification.status,
            EmailVerification.reasons,
            EmailVerification.details,
        ).where(EmailVerification.job_id == job.id)
    )
    stored = {email: (status, reasons, details) for email, status, reasons, details in rows}
    alone = await verification_service.verify_addresses(session, emails)
    assert stored == {o.email: (o.status, o.reasons, o.details) for o in alone}
    assert len(stored) == 26
    assert stored["ann@gmail.com"][:2] == ("deliverable", ["mx_found", "free_mail_provider"])
    assert stored["careers@gmail.com"][:2] == (
        "risky",
        ["mx_found", "role_account", "free_mail_provider"],
    )
    assert stored["bob@mailinator.com"][:2] == ("risky", ["mx_found", "disposable_domain"])
    assert stored["jösé@gmail.com"] == (
        "deliverable",
        ["mx_found", "free_mail_provider"],
        {"mx_hosts": ["mx.gmail.com"]},
    )
    assert stored["ann@zz-broken.test"] == ("unknown", ["dns_error"], {"mx_hosts": []})
    assert stored['"john doe"@d00.test'][:2] == ("undeliverable", ["invalid_syntax"])
    done = await session.get(VerificationJob, job.id, populate_existing=True)
    assert done is not None
    assert done.counts == dict(Counter(o.status for o in alone))
    assert done.credits_refunded == done.counts["unknown"] == 5
