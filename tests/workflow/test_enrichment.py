"""Bulk enrichment as a checkpointed graph: a crash inside a step resumes after the last
company stored; the held credits are settled exactly once."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.config import Settings
from outreach.credits.service import credit_service
from outreach.kit.db import Database
from outreach.models import LedgerEntry, User, VerificationJob
from outreach.recipient.enrichment import enrichment_service
from outreach.workflow.checkpoint import open_checkpointer
from outreach.workflow.enrichment import enrichment_graph, run_enrichment_job
from tests.conftest import create_user
from tests.fakes.dns import FakeDNS

NAMES = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta"]
FOUND = NAMES[:5]  # zeta and eta have no mail domain: nothing found, their hold refunded


class Crash(RuntimeError):
    pass


@pytest.fixture
def zone(fake_dns: FakeDNS) -> FakeDNS:
    for name in FOUND:
        fake_dns.add_mx(f"{name}.test", f"mx.{name}.test")
    return fake_dns


def domain_queries(dns: FakeDNS) -> list[int]:
    return [dns.queries[(f"{name}.test", "MX")] for name in NAMES]


async def start_job(session: AsyncSession, user: User) -> uuid.UUID:
    job = await enrichment_service.start_bulk(
        session,
        user_id=user.id,
        companies=[{"name": name.title(), "domain": f"{name}.test"} for name in NAMES],
        list_id=None,
        add_to_list_id=None,
        idempotency_key="enrich",
    )
    await session.flush()
    assert job.status == "queued"  # more companies than run inside the request
    return job.id


async def saved_state(job_id: uuid.UUID) -> dict[str, Any]:
    async with open_checkpointer() as saver:
        graph = enrichment_graph.compile(checkpointer=saver)
        snapshot = await graph.aget_state({"configurable": {"thread_id": str(job_id)}})
    return {"values": dict(snapshot.values), "next": tuple(snapshot.next)}


async def test_a_crash_inside_a_step_resumes_after_the_last_company_stored(
    run_settings: Settings,
    zone: FakeDNS,
    database: Database,
    session: AsyncSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    user = await create_user(session, "ada@example.com", balance=100)
    job_id = await start_job(session, user)
    real = enrichment_service.enrich_company
    calls = [0]

    async def crashing(*args: Any, **kwargs: Any) -> dict[str, Any]:
        calls[0] += 1
        if calls[0] == 4:  # delta, the second company of the second step
            raise Crash("enrich_company")
        return await real(*args, **kwargs)

    monkeypatch.setattr(enrichment_service, "enrich_company", crashing)

    with pytest.raises(Crash):
        await run_enrichment_job(database, job_id=job_id)

    job = await session.get(VerificationJob, job_id, populate_existing=True)
    assert job is not None
    assert [r["company"] for r in job.results] == ["Alpha", "Beta", "Gamma"]
    saved = await saved_state(job_id)
    assert (saved["values"]["done"], saved["next"]) == (2, ("enrich_batch",))
    zone.queries.clear()

    await run_enrichment_job(database, job_id=job_id)

    assert domain_queries(zone) == [0, 0, 0, 1, 1, 1, 1]  # Alpha..Gamma not enriched again
    job = await session.get(VerificationJob, job_id, populate_existing=True)
    assert job is not None
    assert job.status == "completed"
    assert [r["company"] for r in job.results] == [name.title() for name in NAMES]
    assert [len(r["candidates"]) for r in job.results] == [3, 3, 3, 3, 3, 0, 0]
    assert job.counts == {"companies": 7, "found": 15, "added_to_list": 0}
    held = 7 * 3 * 2
    assert (job.credits_charged, job.credits_refunded) == (held, held - 15 * 2)
    deltas = await session.scalars(
        select(LedgerEntry.delta)
        .where(LedgerEntry.ref == f"enrich_job:{job_id}")
        .order_by(LedgerEntry.created_at, LedgerEntry.delta)
    )
    assert list(deltas) == [-held, held - 30]
    assert await credit_service.get_balance(session, user_id=user.id) == 100 - 30
    assert (await saved_state(job_id))["values"] == {}  # checkpoints deleted at the end

    zone.queries.clear()
    await run_enrichment_job(database, job_id=job_id)  # a redelivered job: nothing happens
    assert zone.total_queries == 0
    assert await credit_service.get_balance(session, user_id=user.id) == 100 - 30
