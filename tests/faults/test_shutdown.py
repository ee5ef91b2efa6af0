"""SIGTERM mid-tick: a process asked to stop claims nothing more, finishes the sends in
flight, hands back what it claimed but had not started, records every outcome, and
exits 0 within its bound. Nothing is lost and nothing is sent twice.

For real: ``outreach worker`` runs in its own process against the test database and
Redis, Gmail (the fake) answers slowly so the tick is mid-send when SIGTERM arrives.
The embedded default (jobs inside the API process) is shown with the app's lifespan
ending mid-tick, as uvicorn ends it on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable

import pytest
from redis.asyncio import Redis
from sqlalchemy import select
from taskiq.kicker import AsyncKicker

from outreach.campaign import sending
from outreach.config import Settings
from outreach.kit import jobs
from outreach.kit.clock import Clock
from outreach.kit.db import Database
from outreach.kit.shutdown import stop_requested
from outreach.models.campaign import EmailStatus, ScheduledEmail
from tests.campaign.test_gmail import START, scheduled_campaign
from tests.fakes.gmail import FakeGmail
from tests.fakes.google import FakeGoogle
from tests.faults.conftest import running_app
from tests.faults.invariants import check_invariants, gmail_deliveries
from tests.faults.test_worker import settings_for_a_process

SEND = "gmail.users.drafts.send"
EMAILS = 6
# The whole bound an operator gets: the grace for jobs plus the clean-up after it.
EXIT_BOUND_SECONDS = 30
# Starting a process (importing everything) is not what is measured, and takes
# over a minute on a machine loaded by other test runs: a generous bound.
START_BOUND_SECONDS = 300

# `outreach worker` itself (the Typer command), with the test's settings (secrets
# and the fakes' addresses) given as arguments rather than through the environment.
WORKER = """
import json, sys
from outreach.cli import app
from outreach.config import Settings, use_settings

use_settings(Settings(_env_file=None, **json.loads(sys.argv[1])))
app(["worker", "--concurrency", "4"])
"""
SCHEDULER = WORKER.replace('["worker", "--concurrency", "4"]', '["scheduler"]')


async def statuses(database: Database) -> Counter[EmailStatus]:
    async with database.session() as session:
        return Counter((await session.scalars(select(ScheduledEmail.status))).all())


async def attempts(database: Database) -> list[int]:
    async with database.session() as session:
        return sorted((await session.scalars(select(ScheduledEmail.attempts))).all())


async def prepared_campaign(database: Database, fake_google: FakeGoogle, clock: Clock) -> None:
    """Six Gmail drafts due from START (in the past of the real clock the worker reads)."""
    clock.freeze(START)
    async with database.session() as session:
        campaign, _ = await scheduled_campaign(session, fake_google, emails=EMAILS)
    await sending.prepare_campaign_emails(database, campaign.id)
    clock.unfreeze()


@pytest.fixture
async def redis_queue(redis_url: str, gmail_faults: Settings) -> AsyncIterator[Settings]:
    """The Gmail settings on Redis, with a queue of this test's own; two sends at a time,
    so that four of the six claimed emails wait their turn when the stop comes."""
    queue = f"outreach-shutdown-{uuid.uuid4().hex[:8]}"
    yield gmail_faults.model_copy(
        update={
            "redis_url": redis_url,
            "job_queue_name": queue,
            "send_concurrency": 2,
            "stop_grace_seconds": 20.0,
            "jobs_inline": False,
        }
    )
    redis = Redis.from_url(redis_url)
    await redis.delete(queue)
    await redis.aclose()


async def started(process: asyncio.subprocess.Process, line: bytes, output: bytearray) -> None:
    """Read the process's output until ``line`` (its log line once it runs)."""
    assert process.stdout is not None
    while line not in output:
        read = await asyncio.wait_for(process.stdout.readline(), timeout=START_BOUND_SECONDS)
        assert read, f"the process ended before it started: {output.decode(errors='replace')}"
        output += read


async def eventually(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` until it holds, for at most START_BOUND_SECONDS."""
    deadline = time.monotonic() + START_BOUND_SECONDS
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        await asyncio.sleep(0.02)


async def drain(process: asyncio.subprocess.Process, output: bytearray) -> None:
    assert process.stdout is not None
    output += await process.stdout.read()


async def kick_send_tick(settings: Settings) -> None:
    """Send one tick to the queue, as `outreach scheduler` does every 30 s."""
    broker = jobs.create_broker(settings)
    await broker.startup()  # declares the consumer group before the message exists
    try:
        await AsyncKicker("campaign.send_due_emails", broker, {"max_attempts": 1}).kiq()
    finally:
        await broker.shutdown()


@pytest.mark.usefixtures("jobs_on")
async def test_sigterm_mid_tick_finishes_what_is_in_flight_and_releases_the_rest(
    committing_database: Database,
    redis_queue: Settings,
    fake_google: FakeGoogle,
    fake_gmail: FakeGmail,
    frozen_clock: Clock,
) -> None:
    await prepared_campaign(committing_database, fake_google, frozen_clock)
    fake_gmail.delay(SEND, 1.5)  # the tick is mid-send when the signal comes
    config = json.dumps(settings_for_a_process(redis_queue))
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        WORKER,
        config,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output = bytearray()
    draining: asyncio.Task[None] | None = None
    try:
        await started(worker, b"worker started", output)
        draining = asyncio.create_task(drain(worker, output))  # a full pipe would block it
        await kick_send_tick(redis_queue)
        await eventually(lambda: fake_gmail.called(SEND) >= 1, "the worker sent to Gmail")
        # Mid-tick: the first send is at Gmail, the second waits its turn behind it
        # (one send at a time per Gmail mailbox), four more are claimed behind those.
        assert fake_gmail.called(SEND) == 1
        worker.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        exit_code = await asyncio.wait_for(worker.wait(), timeout=EXIT_BOUND_SECONDS + 10)
        took = time.monotonic() - signalled
    finally:
        if worker.returncode is None:
            worker.kill()
            await worker.wait()
        if draining is not None:
            await draining

    assert exit_code == 0, output.decode(errors="replace")
    assert took < EXIT_BOUND_SECONDS, f"the worker took {took:.1f} s to stop"
    # The two sends under way finished and were recorded; the other four went back.
    after_stop = await statuses(committing_database)
    in_flight = fake_gmail.called(SEND)
    assert in_flight == 2
    assert after_stop == {EmailStatus.sent: 2, EmailStatus.ready: EMAILS - 2}
    assert await attempts(committing_database) == [0] * (EMAILS - 2) + [1, 1]  # none counted

    # A later tick (here, in this process) sends the released ones, each once.
    fake_gmail.delays.clear()
    await sending.send_due_emails(committing_database)
    async with committing_database.session() as session:
        summary = await check_invariants(session, delivered=gmail_deliveries(fake_gmail))
    assert summary.statuses == {EmailStatus.sent: EMAILS}
    assert fake_gmail.called(SEND) == EMAILS


async def test_sigterm_stops_the_scheduler_at_once(redis_queue: Settings) -> None:
    config = json.dumps(settings_for_a_process(redis_queue))
    scheduler = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SCHEDULER,
        config,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert scheduler.stdout is not None
    # The signal must land in its loop, not in start-up: wait for its log line.
    await started(scheduler, b"scheduler started", bytearray())
    scheduler.send_signal(signal.SIGTERM)
    rest = await asyncio.wait_for(scheduler.stdout.read(), timeout=EXIT_BOUND_SECONDS)
    assert await scheduler.wait() == 0, rest.decode()
    assert b"scheduler stopped" in rest


@pytest.mark.usefixtures("jobs_on")
async def test_the_embedded_jobs_stop_with_the_api_process(
    committing_database: Database,
    gmail_faults: Settings,
    fake_google: FakeGoogle,
    fake_gmail: FakeGmail,
    frozen_clock: Clock,
) -> None:
    await prepared_campaign(committing_database, fake_google, frozen_clock)
    embedded = gmail_faults.model_copy(
        update={"send_concurrency": 2, "jobs_inline": False, "stop_grace_seconds": 20.0}
    )
    fake_gmail.delay(SEND, 1.0)
    async with running_app(embedded, committing_database):
        await jobs.enqueue("campaign.send_due_emails")
        await eventually(lambda: fake_gmail.called(SEND) >= 1, "the tick sent to Gmail")
    # The lifespan has ended (uvicorn's answer to SIGTERM): the tick finished its two
    # sends, handed back the rest, and the next app in this process runs normally.
    assert not stop_requested()
    assert await statuses(committing_database) == {
        EmailStatus.sent: 2,
        EmailStatus.ready: EMAILS - 2,
    }
    assert fake_gmail.called(SEND) == 2
