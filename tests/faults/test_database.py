"""The database goes away mid-request.

PostgreSQL: the app reaches the database through an in-process TCP proxy the test
cuts (never by stopping the shared server). SQLite is a file opened in-process:
there is no connection to drop, so its honest faults are the disk filling up
mid-transaction and the file locked by another process.

Every fault answers 503 ``database_unavailable`` (problem+json, ``Retry-After``),
leaves no partial write, and the app recovers on its own once the database is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import sys
from datetime import timedelta
from pathlib import Path

import httpx
from sqlalchemy import func, select

from outreach.campaign import sending
from outreach.config import Settings
from outreach.kit.clock import Clock
from outreach.kit.db import Database
from outreach.models import AuditLog, LedgerEntry
from outreach.models.campaign import Campaign, CampaignStatus, EmailStatus, ScheduledEmail
from tests.faults.conftest import (
    START,
    DraftCampaign,
    SqliteFile,
    cut_before,
    draft_campaign,
    signed_in,
)
from tests.faults.invariants import check_invariants, outbox_deliveries
from tests.faults.proxy import TcpProxy


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "database_unavailable"
    assert response.headers["retry-after"]


async def schedule(client: httpx.AsyncClient, draft: DraftCampaign, key: str) -> httpx.Response:
    return await client.post(
        f"/v1/campaigns/{draft.campaign_id}/schedule", headers={"Idempotency-Key": key}
    )


async def assert_nothing_scheduled(database: Database, draft: DraftCampaign) -> None:
    """The campaign is still a draft: no email, no charge, no audit row."""
    async with database.session() as session:
        campaign = await session.get(Campaign, draft.campaign_id)
        assert campaign is not None
        assert campaign.status == CampaignStatus.draft
        assert await session.scalar(select(func.count()).select_from(ScheduledEmail)) == 0
        charges = select(func.count()).where(LedgerEntry.reason == "campaign_schedule")
        assert await session.scalar(charges) == 0
        audits = select(func.count()).where(AuditLog.action == "campaign.schedule")
        assert await session.scalar(audits) == 0


async def assert_scheduled_once(
    database: Database, draft: DraftCampaign, settings: Settings
) -> None:
    async with database.session() as session:
        summary = await check_invariants(session, delivered=outbox_deliveries(settings.outbox_path))
        audits = select(func.count()).where(AuditLog.action == "campaign.schedule")
        assert await session.scalar(audits) == 1
    assert summary.statuses[EmailStatus.pending] + summary.statuses[EmailStatus.ready] == 3
    assert summary.balances[draft.user_id] == 20 - 3


class TestPostgresConnectionDropped:
    async def test_cut_mid_schedule_leaves_nothing_and_the_retry_schedules_once(
        self,
        proxied_database: Database,
        committing_database: Database,
        db_proxy: TcpProxy,
        outbox_settings: Settings,
        draft: DraftCampaign,
    ) -> None:
        async with signed_in(outbox_settings, proxied_database, draft) as client:
            # Charged and the emails inserted, then the link drops before the audit row.
            cut_before(proxied_database.engine, db_proxy, "INSERT INTO audit_logs")
            assert_unavailable(await schedule(client, draft, "schedule-1"))
            await assert_nothing_scheduled(committing_database, draft)

            retry = await schedule(client, draft, "schedule-1")
            assert retry.status_code == 202, retry.text
            assert retry.json()["charged_credits"] == 3
        await assert_scheduled_once(committing_database, draft, outbox_settings)

    async def test_a_commit_that_never_arrives_changes_nothing(
        self,
        proxied_database: Database,
        committing_database: Database,
        db_proxy: TcpProxy,
        outbox_settings: Settings,
        draft: DraftCampaign,
    ) -> None:
        async with signed_in(outbox_settings, proxied_database, draft) as client:
            db_proxy.drop_next_commit()
            assert_unavailable(await schedule(client, draft, "schedule-1"))
            await assert_nothing_scheduled(committing_database, draft)
            assert (await schedule(client, draft, "schedule-1")).status_code == 202
        await assert_scheduled_once(committing_database, draft, outbox_settings)

    async def test_a_commit_whose_answer_is_lost_is_replayed_not_redone(
        self,
        proxied_database: Database,
        committing_database: Database,
        db_proxy: TcpProxy,
        outbox_settings: Settings,
        draft: DraftCampaign,
    ) -> None:
        """The commit happened but the app cannot know: it says 503, and the client's
        retry with the same Idempotency-Key gets the stored answer, charged once."""
        async with signed_in(outbox_settings, proxied_database, draft) as client:
            db_proxy.lose_next_commit_reply()
            assert_unavailable(await schedule(client, draft, "schedule-1"))
            retry = await schedule(client, draft, "schedule-1")
            assert retry.status_code == 202, retry.text
            assert retry.headers["idempotent-replayed"] == "true"
        await assert_scheduled_once(committing_database, draft, outbox_settings)

    async def test_unreachable_then_back_the_pool_recovers(
        self,
        proxied_database: Database,
        committing_database: Database,
        db_proxy: TcpProxy,
        outbox_settings: Settings,
        draft: DraftCampaign,
    ) -> None:
        async with signed_in(outbox_settings, proxied_database, draft) as client:
            db_proxy.refusing = True
            db_proxy.cut()  # the pooled connections die too
            assert_unavailable(await client.get(f"/v1/campaigns/{draft.campaign_id}"))
            assert_unavailable(await schedule(client, draft, "schedule-1"))
            ready = await client.get("/ready")
            assert ready.status_code == 503
            assert ready.json()["components"]["database"]["status"] == "error"
            await assert_nothing_scheduled(committing_database, draft)

            db_proxy.refusing = False
            assert (await client.get("/ready")).status_code == 200
            assert (await schedule(client, draft, "schedule-1")).status_code == 202
        await assert_scheduled_once(committing_database, draft, outbox_settings)

    async def test_cut_while_recording_a_send_is_reconciled_not_resent(
        self,
        proxied_database: Database,
        committing_database: Database,
        db_proxy: TcpProxy,
        outbox_settings: Settings,
        frozen_clock: Clock,
    ) -> None:
        """The outbox delivered the message, then the connection dropped under the
        write that records it: the email stays claimed (delivered, not yet known to
        be), and after the lease a tick finds the message and marks it sent, once."""
        frozen_clock.freeze(START - timedelta(hours=2))
        draft = await draft_campaign(committing_database, emails=2)
        async with signed_in(outbox_settings, proxied_database, draft) as client:
            assert (await schedule(client, draft, "schedule-1")).status_code == 202
        await sending.prepare_campaign_emails(proxied_database, draft.campaign_id)
        frozen_clock.freeze(START + timedelta(minutes=5))
        cut_before(
            proxied_database.engine, db_proxy, "UPDATE scheduled_emails", containing="sent_at"
        )
        await sending.send_due_emails(proxied_database)
        assert db_proxy.cuts == 1
        async with committing_database.session() as session:
            summary = await check_invariants(
                session, delivered=outbox_deliveries(outbox_settings.outbox_path), in_flight=True
            )
        assert summary.statuses == {EmailStatus.sending: 1, EmailStatus.sent: 1}
        assert summary.delivered == 2
        for _ in range(3):
            frozen_clock.advance(sending.LEASE + timedelta(seconds=1))
            await sending.send_due_emails(proxied_database)
        async with committing_database.session() as session:
            summary = await check_invariants(
                session, delivered=outbox_deliveries(outbox_settings.outbox_path)
            )
        assert summary.statuses == {EmailStatus.sent: 2}
        assert summary.delivered == 2


def _vacuum(path: Path) -> None:
    """Drop the file's free pages, so every new page grows the file."""
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as connection:
        connection.execute("VACUUM")


LOCK_HOLDER = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
connection.execute("ROLLBACK")
"""


class TestSqliteFile:
    async def test_disk_full_mid_schedule_leaves_nothing(
        self,
        sqlite_file: tuple[Database, SqliteFile],
        committing_database: Database,
        outbox_settings: Settings,
        frozen_clock: Clock,
    ) -> None:
        """Every email row needs new pages (long bodies): the disk fills up after the
        charge and before the emails are stored."""
        database, faults = sqlite_file
        frozen_clock.freeze(START - timedelta(hours=2))
        draft = await draft_campaign(committing_database, body_text="Hello. " * 1500)
        async with signed_in(outbox_settings, database, draft) as client:
            await asyncio.to_thread(_vacuum, faults.path)
            faults.full = True
            assert_unavailable(await schedule(client, draft, "schedule-1"))
            await assert_nothing_scheduled(committing_database, draft)

            faults.full = False  # space freed: the same app goes on
            assert (await schedule(client, draft, "schedule-1")).status_code == 202
        await assert_scheduled_once(committing_database, draft, outbox_settings)

    async def test_file_locked_by_another_process_is_503_until_released(
        self,
        sqlite_file: tuple[Database, SqliteFile],
        committing_database: Database,
        outbox_settings: Settings,
        draft: DraftCampaign,
    ) -> None:
        database, faults = sqlite_file
        async with signed_in(outbox_settings, database, draft) as client:
            holder = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                LOCK_HOLDER,
                str(faults.path),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
            assert holder.stdin is not None
            assert holder.stdout is not None
            try:
                assert await holder.stdout.readline() == b"locked\n"
                assert_unavailable(await schedule(client, draft, "schedule-1"))
                assert_unavailable(await client.get(f"/v1/campaigns/{draft.campaign_id}"))
                assert (await client.get("/ready")).status_code == 503
            finally:
                holder.stdin.write(b"done\n")
                await holder.wait()
            await assert_nothing_scheduled(committing_database, draft)
            assert (await schedule(client, draft, "schedule-1")).status_code == 202
        await assert_scheduled_once(committing_database, draft, outbox_settings)
