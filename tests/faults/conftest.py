"""Fault-suite fixtures: committed data, an app on a database the test can break,
the TCP proxy in front of PostgreSQL, campaigns to act on, Gmail without quota waits."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from outreach.app import create_app
from outreach.campaign import sending
from outreach.campaign.schemas import CampaignCreate
from outreach.campaign.service import campaign_service
from outreach.config import Settings, get_settings, use_settings
from outreach.kit.clock import Clock
from outreach.kit.db import Database, create_engine
from outreach.models import MailboxMode, User
from tests.campaign.conftest import (  # noqa: F401 - outbox_settings, jobs_on: fixtures
    jobs_on,
    make_list,
    make_outbox_mailbox,
    make_template,
    outbox_settings,
)

# START: Monday 30 November 2026, 09:00 in Kolkata, inside the default sending window.
from tests.campaign.test_gmail import START, gmail_settings, scheduled_campaign  # noqa: F401
from tests.conftest import create_user, make_client, sign_in
from tests.fakes.google import FakeGoogle
from tests.faults.proxy import TcpProxy
from tests.payment.conftest import fake_razorpay, fake_razorpay_server  # noqa: F401 - fixtures


@asynccontextmanager
async def running_app(settings: Settings, database: Database) -> AsyncIterator[FastAPI]:
    """The app with its lifespan on ``database``; the test's settings are restored after."""
    previous = get_settings()
    app = create_app(settings, database=database)
    try:
        async with app.router.lifespan_context(app):
            yield app
    finally:
        use_settings(previous)


@dataclass(frozen=True)
class DraftCampaign:
    campaign_id: uuid.UUID
    user_id: uuid.UUID
    mailbox_id: uuid.UUID
    email: str


async def draft_campaign(
    database: Database,
    *,
    email: str = "asha@example.com",
    emails: int = 3,
    balance: int = 20,
    cap: int = 250,
    timezone: str = "Asia/Kolkata",
    body_text: str | None = None,
    **settings: Any,
) -> DraftCampaign:
    """A committed user with credits, an outbox mailbox, a list and a draft campaign."""
    async with database.session() as session:
        user: User = await create_user(session, email, balance=balance)
        mailbox = await make_outbox_mailbox(
            session, user, address=email, cap=cap, timezone=timezone
        )
        rows = [{"email": f"lead{n}@firm{n}.com", "company": f"Firm {n}"} for n in range(emails)]
        recipients = await make_list(session, user, rows)
        body = {"body_text": body_text} if body_text else {}
        template_id = await make_template(session, user, **body)
        data = {"start_at": START, "min_gap_seconds": 60, "jitter_seconds": 0, **settings}
        campaign = await campaign_service.create(
            session,
            user=user,
            data=CampaignCreate(
                name="Fault run",
                mailbox_id=mailbox.id,
                template_id=template_id,
                list_id=recipients.id,
                **data,
            ),
        )
        return DraftCampaign(campaign.id, user.id, mailbox.id, email)


@pytest.fixture
def gmail_faults(gmail_settings: Settings) -> Iterator[Settings]:  # noqa: F811
    """Gmail settings whose per-mailbox quota never makes a test wait (a send costs
    100 of Gmail's 250 units a second: dozens of failing sends would take seconds)."""
    changed = gmail_settings.model_copy(update={"gmail_quota_units_per_second": 10**9})
    use_settings(changed)
    yield changed
    use_settings(gmail_settings)


async def prepared_gmail_campaign(
    database: Database,
    session: AsyncSession,
    fake_google: FakeGoogle,
    clock: Clock,
    *,
    emails: int,
    mode: MailboxMode = MailboxMode.full,
) -> tuple[uuid.UUID, uuid.UUID]:
    """A Gmail campaign (30 credits, Kolkata, due from START) with its drafts made an
    hour before; returns the campaign's and the user's ids."""
    clock.freeze(START - timedelta(hours=1))
    campaign, user = await scheduled_campaign(session, fake_google, mode=mode, emails=emails)
    await sending.prepare_campaign_emails(database, campaign.id)
    return campaign.id, user.id  # type: ignore[attr-defined]


async def outbox_campaign(session: AsyncSession, *, start_at: datetime) -> uuid.UUID:
    user = await create_user(session, "ravi@example.com", balance=10)
    mailbox = await make_outbox_mailbox(session, user, address="ravi@example.com")
    rows = [{"email": f"hr{n}@corp{n}.com", "company": f"Corp {n}"} for n in range(2)]
    recipients = await make_list(session, user, rows)
    data = CampaignCreate(
        name="Outbox run",
        mailbox_id=mailbox.id,
        template_id=await make_template(session, user),
        list_id=recipients.id,
        start_at=start_at,
        min_gap_seconds=60,
        jitter_seconds=0,
    )
    campaign = await campaign_service.create(session, user=user, data=data)
    await campaign_service.schedule(session, user=user, campaign=campaign)
    await session.flush()
    return campaign.id


@pytest.fixture
async def draft(committing_database: Database, frozen_clock: Clock) -> DraftCampaign:
    """A committed draft campaign of three emails (20 credits), two hours before START."""
    frozen_clock.freeze(START - timedelta(hours=2))
    return await draft_campaign(committing_database)


@asynccontextmanager
async def signed_in(
    settings: Settings, database: Database, draft: DraftCampaign
) -> AsyncIterator[httpx.AsyncClient]:
    """A browser signed in as the draft's owner, on the app started on ``database``."""
    async with running_app(settings, database) as app, make_client(app) as client:
        await sign_in(client, draft.email)
        yield client


# -- the database the test breaks ------------------------------------------------------


@pytest.fixture
async def db_proxy(database_url: str) -> AsyncIterator[TcpProxy]:
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        pytest.skip(
            "SQLite is a file opened in-process: there is no connection to drop "
            "(tests/faults/test_database.py breaks the file instead)"
        )
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    await proxy.start()
    yield proxy
    await proxy.stop()


@pytest.fixture
async def proxied_database(
    db_proxy: TcpProxy, database_url: str, committing_database: Database
) -> AsyncIterator[Database]:
    """The worker's PostgreSQL database reached through the proxy (TLS off, so the proxy
    can read the COMMITs); every table is emptied afterwards (``committing_database``)."""
    url = make_url(database_url).set(host="127.0.0.1", port=db_proxy.port)
    url = url.update_query_dict({"ssl": "disable"})
    database = Database(create_engine(url.render_as_string(hide_password=False), pool_size=2))
    yield database
    await database.dispose()


def cut_before(
    engine: AsyncEngine, proxy: TcpProxy, statement_prefix: str, *, containing: str = ""
) -> None:
    """Cut every connection just before the first statement that starts with
    ``statement_prefix`` (and contains ``containing``) is sent: what the transaction
    did so far is on the server, uncommitted."""
    armed = [True]

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def cut(*args: Any) -> None:
        statement: str = args[2]
        if armed[0] and statement.startswith(statement_prefix) and containing in statement:
            armed[0] = False
            proxy.cut()


@dataclass
class SqliteFile:
    """The SQLite file under test and the faults set on the app's connections."""

    path: Path
    full: bool = False  # no page may be added: the disk is full


@pytest.fixture
async def sqlite_file(
    database_url: str, committing_database: Database
) -> AsyncIterator[tuple[Database, SqliteFile]]:
    """The worker's SQLite file opened by a second engine whose connections give up
    on a lock after 100 ms (not 30 s) and can be told the disk is full."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        pytest.skip("a fault of the SQLite file; PostgreSQL is broken through the proxy")
    assert url.database is not None
    faults = SqliteFile(Path(url.database))
    database = Database(create_engine(database_url))

    @event.listens_for(database.engine.sync_engine, "checkout")
    def _apply(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=100")
        cursor.execute("PRAGMA page_count")
        pages = cursor.fetchone()[0]
        cursor.execute(f"PRAGMA max_page_count={pages if faults.full else 2**30}")
        cursor.close()

    yield database, faults
    await database.dispose()
