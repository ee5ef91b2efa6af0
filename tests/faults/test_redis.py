"""Redis goes away.

What falls back: the sign-in rate limit is counted in the database (the limit
holds, sign-in keeps working). What cannot: a request that would start a
background job answers 503 ``job_queue_unavailable`` *before* its commit, so
nothing is stored without its job; everything else is untouched. Should Redis
drop between that check and the send, the stored work is answered 2xx and the
job is kept in ``failed_jobs``. Never a 500.

Redis "down" is a closed port; Redis coming back (or dropping mid-request) is the
TCP proxy in front of the real Redis, so that part needs OUTREACH_TEST_REDIS_URL.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select

from outreach.config import Settings
from outreach.kit import jobs
from outreach.kit.db import Database
from outreach.models import FailedJob
from outreach.models.campaign import EmailStatus
from tests.conftest import make_client, sign_in
from tests.faults.conftest import DraftCampaign, running_app, signed_in
from tests.faults.invariants import check_invariants, outbox_deliveries
from tests.faults.proxy import TcpProxy
from tests.faults.test_database import assert_nothing_scheduled, schedule

CLOSED_PORT = "redis://127.0.0.1:1/0"


def assert_queue_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "job_queue_unavailable"
    assert response.headers["retry-after"]


async def test_redis_down_sign_in_falls_back_and_jobs_answer_503(
    committing_database: Database, outbox_settings: Settings, draft: DraftCampaign
) -> None:
    down = outbox_settings.model_copy(update={"redis_url": CLOSED_PORT, "signin_rate_limit": 3})
    async with running_app(down, committing_database) as app, make_client(app) as client:
        for _ in range(3):  # counted in the database while Redis is away
            await sign_in(client, draft.email)
        limited = await client.post("/v1/auth/dev-login", json={"email": draft.email})
        assert limited.status_code == 429, limited.text

        assert_queue_unavailable(await schedule(client, draft, "schedule-1"))
        await assert_nothing_scheduled(committing_database, draft)
        # What needs no job is untouched.
        assert (await client.get(f"/v1/campaigns/{draft.campaign_id}")).status_code == 200
        assert (await client.get("/v1/credits/balance")).json()["balance"] == 20
        ready = await client.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["components"]["redis"]["status"] == "error"
    async with committing_database.session() as session:
        await check_invariants(session, delivered=[])


@pytest.fixture
async def redis_proxy(redis_url: str) -> AsyncIterator[tuple[TcpProxy, str]]:
    """A proxy in front of the test Redis, and a Redis URL through it."""
    real = Redis.from_url(redis_url)
    host = real.connection_pool.connection_kwargs.get("host", "127.0.0.1")
    port = real.connection_pool.connection_kwargs.get("port", 6379)
    database = real.connection_pool.connection_kwargs.get("db", 0)
    proxy = TcpProxy(host, port)
    await proxy.start()
    yield proxy, f"redis://127.0.0.1:{proxy.port}/{database}"
    await proxy.stop()
    await real.aclose()


@pytest.fixture
async def queue(redis_url: str) -> AsyncIterator[str]:
    """A stream of this test's own (no other test's worker reads it), deleted after."""
    name = f"outreach-faults-{uuid.uuid4().hex[:8]}"
    yield name
    real = Redis.from_url(redis_url)
    await real.delete(name)
    await real.aclose()


@pytest.fixture
def through_proxy(
    outbox_settings: Settings, redis_proxy: tuple[TcpProxy, str], queue: str
) -> Settings:
    """The app's settings with Redis reached through the proxy, on the test's stream."""
    _, url = redis_proxy
    return outbox_settings.model_copy(update={"redis_url": url, "job_queue_name": queue})


async def queued(redis_url: str, queue: str) -> int:
    real = Redis.from_url(redis_url)
    try:
        return int(await real.xlen(queue))
    finally:
        await real.aclose()


async def test_redis_back_the_same_app_queues_again(
    committing_database: Database,
    outbox_settings: Settings,
    draft: DraftCampaign,
    through_proxy: Settings,
    redis_proxy: tuple[TcpProxy, str],
    redis_url: str,
    queue: str,
) -> None:
    proxy, _ = redis_proxy
    async with signed_in(through_proxy, committing_database, draft) as client:
        proxy.refusing = True
        proxy.cut()
        assert_queue_unavailable(await schedule(client, draft, "schedule-1"))
        await assert_nothing_scheduled(committing_database, draft)
        await sign_in(client, draft.email)  # the rate limit falls back meanwhile

        proxy.refusing = False
        assert (await schedule(client, draft, "schedule-1")).status_code == 202
        assert (await client.get("/ready")).status_code == 200
    assert await queued(redis_url, queue) == 1  # campaign.prepare_emails, once
    async with committing_database.session() as session:
        summary = await check_invariants(
            session, delivered=outbox_deliveries(outbox_settings.outbox_path)
        )
    assert summary.statuses == {EmailStatus.pending: 3}


async def test_redis_dropping_after_the_check_keeps_the_job_in_failed_jobs(
    committing_database: Database,
    draft: DraftCampaign,
    through_proxy: Settings,
    redis_proxy: tuple[TcpProxy, str],
    redis_url: str,
    queue: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proxy, _ = redis_proxy
    checked = jobs.ensure_broker_reachable

    async def check_then_drop() -> Any:
        await checked()
        proxy.refusing = True  # Redis goes away between the check and the send
        proxy.cut()

    monkeypatch.setattr(jobs, "ensure_broker_reachable", check_then_drop)
    async with signed_in(through_proxy, committing_database, draft) as client:
        response = await schedule(client, draft, "schedule-1")
        assert response.status_code == 202, response.text  # the work is stored
    assert await queued(redis_url, queue) == 0
    async with committing_database.session() as session:
        kept = (await session.scalars(select(FailedJob))).all()
        assert [(j.task_name, j.args["kwargs"]) for j in kept] == [
            ("campaign.prepare_emails", {"campaign_id": str(draft.campaign_id)})
        ]
        assert await session.scalar(select(func.count()).select_from(FailedJob)) == 1
        summary = await check_invariants(session, delivered=[])
    assert summary.statuses == {EmailStatus.pending: 3}


async def test_a_hung_redis_is_given_up_on_not_waited_for(
    committing_database: Database,
    draft: DraftCampaign,
    through_proxy: Settings,
    redis_proxy: tuple[TcpProxy, str],
) -> None:
    """Redis accepts connections and never answers: sign-in falls back, a job-starting
    request answers 503, both after a bounded wait rather than never."""
    proxy, _ = redis_proxy
    async with running_app(through_proxy, committing_database) as app, make_client(app) as client:
        proxy.stalled = True
        proxy.cut()  # connections opened at start-up hang too
        async with asyncio.timeout(60):  # a guard against hanging the suite, not a measure
            await sign_in(client, draft.email)
            assert_queue_unavailable(await schedule(client, draft, "schedule-1"))
        await assert_nothing_scheduled(committing_database, draft)
