"""Operating without the HTTP admin API: ``outreach tick send`` and ``outreach jobs
list|retry``, against the test database (SQLite, or PostgreSQL when the suite runs
there), committed for real by the command's own connections.

Each command runs in a thread of its own (it starts its own event loop, as it does
from a shell), with the test's settings."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import timedelta
from email import policy
from email.parser import BytesParser
from pathlib import Path

from click.testing import Result
from sqlalchemy import select
from typer.testing import CliRunner

from outreach.campaign import sending
from outreach.cli import app
from outreach.config import Settings
from outreach.kit.clock import Clock
from outreach.kit.db import Database
from outreach.kit.jobs import job
from outreach.models import AuditLog, FailedJob
from outreach.models.campaign import EmailStatus, ScheduledEmail
from tests.campaign.conftest import jobs_on, outbox_settings  # noqa: F401 - fixtures
from tests.campaign.test_gmail import START
from tests.faults.conftest import outbox_campaign

RECORDED = "test.cli.recorded"
recorded_runs: Counter[str] = Counter()


@job(RECORDED)
async def recorded(key: str) -> None:
    recorded_runs[key] += 1


async def invoke(*args: str) -> Result:
    return await asyncio.to_thread(CliRunner().invoke, app, list(args))


async def statuses(database: Database) -> Counter[EmailStatus]:
    async with database.session() as session:
        return Counter((await session.scalars(select(ScheduledEmail.status))).all())


async def test_tick_send_sends_what_is_due_and_says_so(
    committing_database: Database,
    outbox_settings: Settings,  # noqa: F811 - the fixture
    frozen_clock: Clock,
    jobs_on: None,  # noqa: F811 - the fixture
) -> None:
    frozen_clock.freeze(START - timedelta(hours=1))
    async with committing_database.session() as session:
        campaign_id = await outbox_campaign(session, start_at=START)
    await sending.prepare_campaign_emails(committing_database, campaign_id)
    frozen_clock.unfreeze()  # the command reads the real clock: START is in its past
    assert await statuses(committing_database) == {EmailStatus.ready: 2}

    first = await invoke("tick", "send")
    assert first.exit_code == 0, first.output
    assert first.output.strip() == "claimed 2 emails; now sent 2"
    assert await statuses(committing_database) == {EmailStatus.sent: 2}
    sent = sorted(Path(outbox_settings.outbox_path).glob("*/*.eml"))
    recipients = {
        str(BytesParser(policy=policy.strict).parsebytes(path.read_bytes())["To"]) for path in sent
    }
    assert recipients == {"hr0@corp0.com", "hr1@corp1.com"}

    again = await invoke("tick", "send")
    assert again.exit_code == 0, again.output
    assert again.output.strip() == "claimed 0 emails"
    assert len(list(Path(outbox_settings.outbox_path).glob("*/*.eml"))) == 2  # none twice


async def dead_letter(database: Database, key: str) -> uuid.UUID:
    async with database.session() as session:
        failed = FailedJob(
            task_name=RECORDED,
            task_id=uuid.uuid4().hex,
            args={"args": [], "kwargs": {"key": key}},
            error="RuntimeError: the disk was full\nTraceback line",
            traceback="Traceback (most recent call last): ...",
            attempts=4,
            retried_at=None,
        )
        session.add(failed)
        await session.flush()
        return failed.id


async def test_jobs_list_and_retry_work_like_the_admin_api(
    committing_database: Database, settings: Settings
) -> None:
    key = uuid.uuid4().hex
    failed_id = await dead_letter(committing_database, key)

    listed = await invoke("jobs", "list", "--task", RECORDED, "--not-retried")
    assert listed.exit_code == 0, listed.output
    [line] = listed.output.strip().splitlines()
    assert line.startswith(str(failed_id))
    assert f"{RECORDED}  attempts=4  open  RuntimeError: the disk was full" in line
    none_retried = await invoke("jobs", "list", "--retried")
    assert none_retried.output.strip() == "no failed jobs"

    retried = await invoke("jobs", "retry", str(failed_id))
    assert retried.exit_code == 0, retried.output
    assert retried.output.strip() == f"{RECORDED}: job enqueued"
    assert recorded_runs[key] == 1  # the job ran again, in the command's process
    # Retried once only: a second retry answers the same and runs nothing.
    twice = await invoke("jobs", "retry", str(failed_id))
    assert twice.exit_code == 0, twice.output
    assert recorded_runs[key] == 1

    async with committing_database.session() as session:
        failed = await session.get(FailedJob, failed_id)
        assert failed is not None
        assert failed.retried_at is not None
        actions = Counter((await session.scalars(select(AuditLog.action))).all())
    # Audited as the API audits them; the actor is the command line (no user).
    assert actions["admin.failed_job_retry"] == 1
    assert actions["admin.failed_jobs_viewed"] == 2
    after = await invoke("jobs", "list", "--task", RECORDED, "--retried")
    assert str(failed_id) in after.output
    assert "retried 20" in after.output


async def test_retrying_an_unknown_failed_job_says_so(committing_database: Database) -> None:
    missing = uuid.uuid4()
    result = await invoke("jobs", "retry", str(missing))
    assert result.exit_code == 1
    assert f"no failed job {missing}" in result.output
