"""Scheduling 10,000 emails versus a bare bulk insert of the same rows.

**project**: ``campaign_service.schedule`` for a campaign of 10,000 recipients: it
checks suppressions and recent sends, renders every email through the template
sandbox (with its unsubscribe footer), plans 10,000 due times under the window,
gap and daily cap, charges the credits once and inserts the rows.
**baseline**: the same 10,000 ``scheduled_emails`` rows (already rendered and
planned, taken from the project's own run) inserted with one bulk ``INSERT`` in
one transaction on the same database.

Target: project / baseline <= 3. Rounds alternate after a warm-up; medians are
compared (the machine is shared and noisy). SQLite in a temporary folder by
default, so it runs anywhere; ``--postgres`` (the default when
``OUTREACH_TEST_DATABASE_URL`` is set) uses a fresh PostgreSQL database
(bench/_common.py).

    uv run python bench/campaign_schedule.py [--emails 10000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _common import (
    Target,
    add_database_options,
    create_postgres_database,
    database_label,
    drop_postgres_database,
    exit_code,
    report,
)
from sqlalchemy import delete, insert, select
from sqlalchemy.orm import undefer

from outreach import tasks  # noqa: F401 - registers the jobs schedule() sends
from outreach.config import Environment, Settings, use_settings
from outreach.kit.db import Database, create_engine
from outreach.migrations.runner import upgrade
from outreach.models import (
    Campaign,
    CreditAccount,
    LedgerEntry,
    Mailbox,
    MailboxProvider,
    Recipient,
    ScheduledEmail,
    User,
)
from outreach.models.campaign import CampaignStatus
from outreach.models.recipient_list import ListStatus, RecipientList

START = datetime(2030, 1, 7, 3, 30, tzinfo=UTC)  # a Monday, 09:00 in Kolkata


async def seed(
    database: Database, emails: int
) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID, uuid.UUID]:
    from outreach.template.schemas import TemplateCreate
    from outreach.template.service import template_service

    async with database.session() as session:
        user = User(email="bench@example.com", name="Bench User", referral_code="BENCH00000")
        session.add(user)
        await session.flush()
        session.add(CreditAccount(user_id=user.id, balance=10**9))
        mailbox = Mailbox(
            user_id=user.id,
            provider=MailboxProvider.outbox,
            address="bench@example.com",
            daily_cap=2000,
            timezone="Asia/Kolkata",
            granted_scopes=[],
        )
        recipient_list = RecipientList(user_id=user.id, name="bench", status=ListStatus.ready)
        session.add_all([mailbox, recipient_list])
        await session.flush()
        await session.execute(
            insert(Recipient),
            [
                {
                    "id": uuid.uuid4(),
                    "created_at": START,
                    "list_id": recipient_list.id,
                    "user_id": user.id,
                    "position": n + 2,
                    "email": f"person{n}@company{n % 700}.com",
                    "first_name": f"Person{n}",
                    "company": f"Company {n % 700}",
                    "title": "Recruiter",
                    "custom_fields": {"team": "Data"},
                    "source": "upload",
                    "verification_status": "deliverable",
                    "verification_reasons": [],
                }
                for n in range(emails)
            ],
        )
        template, _ = await template_service.create(
            session,
            user=user,
            data=TemplateCreate(
                name="bench",
                subject="Hello {{ first_name | default('there') }} at {{ company }}",
                body_text=(
                    "Hi {{ first_name | default('there') }},\n\nI'd love to join the "
                    "{{ team | default('engineering') }} team at {{ company }}."
                    "\n\n{{ sender.name }}"
                ),
            ),
        )
        return user.id, mailbox.id, recipient_list.id, template.id


def _clean_heap() -> None:
    """Collect what came before, so that a timed part does not pay for a full
    collection the bench's own rows made due (each part starts as in a fresh worker)."""
    gc.collect()


async def project_round(
    database: Database, ids: tuple[uuid.UUID, ...]
) -> tuple[float, list[dict[str, Any]]]:
    from outreach.campaign.service import campaign_service

    user_id, mailbox_id, list_id, template_id = ids
    async with database.session() as session:
        campaign = Campaign(
            user_id=user_id,
            name="bench",
            mailbox_id=mailbox_id,
            template_id=template_id,
            list_id=list_id,
            start_at=START,
            min_gap_seconds=0,
            jitter_seconds=0,
            company_cap=None,
            skip_recently_emailed_days=0,
            status=CampaignStatus.draft,
        )
        session.add(campaign)
    async with database.session() as session:
        user = await session.get(User, user_id)
        campaign = await session.get(Campaign, campaign.id)
        assert user is not None
        assert campaign is not None
        _clean_heap()
        started = time.perf_counter()
        await campaign_service.schedule(session, user=user, campaign=campaign)
        await session.commit()
        elapsed = time.perf_counter() - started
    async with database.session() as session:
        rows = [
            {c.key: getattr(e, c.key) for c in ScheduledEmail.__table__.columns}
            for e in (
                await session.scalars(
                    select(ScheduledEmail)
                    .where(ScheduledEmail.campaign_id == campaign.id)
                    .options(undefer(ScheduledEmail.mime))
                )
            )
        ]
        await session.execute(delete(ScheduledEmail))
        await session.execute(delete(Campaign))
        await session.execute(delete(LedgerEntry).where(LedgerEntry.user_id == user_id))
    return elapsed, rows


async def baseline_round(
    database: Database, rows: list[dict[str, Any]], campaign_ids: tuple[uuid.UUID, ...]
) -> float:
    user_id, mailbox_id, list_id, template_id = campaign_ids
    campaign_id = uuid.uuid4()
    async with database.session() as session:
        session.add(
            Campaign(
                id=campaign_id,
                user_id=user_id,
                name="bare",
                mailbox_id=mailbox_id,
                template_id=template_id,
                list_id=list_id,
                start_at=START,
                status=CampaignStatus.scheduled,
            )
        )
    fresh = [
        {
            **row,
            "id": uuid.uuid4(),
            "campaign_id": campaign_id,
            "rfc822_message_id": f"<{uuid.uuid4().hex}@b>",
        }
        for row in rows
    ]
    _clean_heap()
    started = time.perf_counter()
    async with database.session() as session:
        for offset in range(0, len(fresh), 1000):
            await session.execute(insert(ScheduledEmail), fresh[offset : offset + 1000])
    elapsed = time.perf_counter() - started
    async with database.session() as session:
        await session.execute(delete(ScheduledEmail))
        await session.execute(delete(Campaign))
    return elapsed


async def main(emails: int, rounds: int, postgres: bool) -> int:
    name = f"outreach_bench_schedule_{os.getpid()}"
    with tempfile.TemporaryDirectory() as folder:
        if postgres:
            url = await create_postgres_database(name)
        else:
            url = f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}"
        await asyncio.to_thread(upgrade, url)
        settings = Settings(
            _env_file=None,
            env=Environment.testing,
            secret_key="b" * 40,
            database_url=url,  # type: ignore[call-arg]
            storage_path=Path(folder) / "storage",
            embedded_scheduler=False,
            jobs_inline=False,
            log_level="WARNING",
        )
        use_settings(settings)
        import outreach.campaign.service as campaign_module

        # Drafts are prepared by a job after the commit; that is not scheduling.
        campaign_module.enqueue_after_commit = lambda *args, **kwargs: None  # type: ignore[assignment]
        database = Database(create_engine(url))
        from outreach.kit.db import set_database

        set_database(database)
        ids = await seed(database, emails)
        _, rows = await project_round(database, ids)  # warm-up
        await baseline_round(database, rows, ids)
        project, baseline = [], []
        for _ in range(rounds):
            baseline.append(await baseline_round(database, rows, ids))
            elapsed, rows = await project_round(database, ids)
            project.append(elapsed)
        await database.dispose()
        if postgres:
            await drop_postgres_database(name)
    p, b = statistics.median(project), statistics.median(baseline)
    print(
        f"[{'PostgreSQL' if postgres else 'SQLite'}] schedule {emails} emails: project {p:.2f}s, "
        f"bare bulk insert {b:.2f}s (medians of {rounds})"
    )
    met = report(
        "campaign_schedule",
        f"schedule {emails:,} emails vs one bulk INSERT",
        ours=p,
        baseline=b,
        unit="s",
        target=Target("<=", 3),
        database=database_label(postgres),
    )
    return exit_code(met)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--emails", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    add_database_options(parser)
    arguments = parser.parse_args()
    sys.exit(asyncio.run(main(arguments.emails, arguments.rounds, arguments.postgres)))
