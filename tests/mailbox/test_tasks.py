"""The reply-check job over many mailboxes: which it reads, in what order, how many at
once, and what it leaves to a run that is still going (against the fake Gmail)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import delete, event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from outreach.config import Settings, use_settings
from outreach.kit.clock import utcnow
from outreach.kit.db import Database
from outreach.mailbox import inbox, tasks
from outreach.mailbox.gmail import GmailClient
from outreach.mailbox.inbox import readable_mailboxes
from outreach.models import Mailbox, MailboxMode, User
from tests.conftest import create_user
from tests.fakes.gmail import FakeGmail
from tests.fakes.google import FakeGoogle
from tests.mailbox.conftest import watched_mailbox
from tests.mailbox.test_inbox import gmail_settings

__all__ = ["gmail_settings"]  # the fixture, used by name

HISTORY_LIST = "gmail.users.history.list"
PROFILE = "gmail.users.getProfile"


class TestReadableMailboxes:
    async def test_one_query_finds_the_mailboxes_with_threads_to_watch(
        self,
        session: AsyncSession,
        engine: AsyncEngine,
        gmail_settings: Settings,
        fake_google: FakeGoogle,
    ) -> None:
        user = await create_user(session, "asha@example.com")
        watched = await watched_mailbox(session, fake_google, user, "a@gmail.com", threads=3)
        await watched_mailbox(session, fake_google, user, "old@gmail.com", sent_days_ago=45)
        await watched_mailbox(session, fake_google, user, "none@gmail.com", threads=0)
        await watched_mailbox(
            session, fake_google, user, "send@gmail.com", mode=MailboxMode.send_only
        )
        statements: list[str] = []

        def count(*args: Any) -> None:
            statements.append(str(args[2]))

        event.listen(engine.sync_engine, "before_cursor_execute", count)
        try:
            found = await readable_mailboxes(session)
        finally:
            event.remove(engine.sync_engine, "before_cursor_execute", count)
        assert [m.address for m in found] == [watched.address]
        # the mailboxes, then which of them have watched threads: no thread is loaded
        assert len(statements) == 2, statements


@pytest.fixture
def checked(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The addresses of the mailboxes ``check_mailbox`` is called for, in order."""
    calls: list[str] = []
    real = tasks.check_mailbox

    async def recording(session: AsyncSession, mailbox: Mailbox, **kw: Any) -> inbox.InboxCheck:
        calls.append(mailbox.address)
        return await real(session, mailbox, **kw)

    monkeypatch.setattr(tasks, "check_mailbox", recording)
    return calls


class TestCheckInboxes:
    async def test_mailboxes_with_a_history_id_go_before_those_read_thread_by_thread(
        self,
        session: AsyncSession,
        database: Database,
        gmail_settings: Settings,
        fake_google: FakeGoogle,
        fake_gmail: FakeGmail,
        checked: list[str],
    ) -> None:
        user = await create_user(session, "asha@example.com")
        new = [
            await watched_mailbox(session, fake_google, user, "new1@gmail.com"),
            await watched_mailbox(session, fake_google, user, "new2@gmail.com"),
        ]
        await watched_mailbox(session, fake_google, user, "known@gmail.com", history_id="1000")
        await tasks.check_inboxes(database)
        in_id_order = [m.address for m in sorted(new, key=lambda m: m.id)]
        assert checked == ["known@gmail.com", *in_id_order]
        assert fake_gmail.calls[0][0] == HISTORY_LIST
        assert fake_gmail.called(PROFILE) == 2  # each new one notes its history id first

    async def test_a_mailbox_an_earlier_run_is_reading_is_left_to_it(
        self,
        session: AsyncSession,
        database: Database,
        gmail_settings: Settings,
        fake_google: FakeGoogle,
        checked: list[str],
    ) -> None:
        user = await create_user(session, "asha@example.com")
        busy = await watched_mailbox(session, fake_google, user, "busy@gmail.com")
        await watched_mailbox(session, fake_google, user, "free@gmail.com", history_id="1000")
        tasks._checking.add(busy.id)
        try:
            await tasks.check_inboxes(database)
        finally:
            tasks._checking.discard(busy.id)
        assert checked == ["free@gmail.com"]

    async def test_full_reads_wait_for_a_later_run_when_the_process_has_enough(
        self,
        session: AsyncSession,
        database: Database,
        gmail_settings: Settings,
        fake_google: FakeGoogle,
        checked: list[str],
    ) -> None:
        user = await create_user(session, "asha@example.com")
        await watched_mailbox(session, fake_google, user, "new@gmail.com")
        await watched_mailbox(session, fake_google, user, "known@gmail.com", history_id="1000")
        other_run = uuid.uuid4()  # a mailbox another run reads thread by thread
        tasks._scanning.add(other_run)  # the concurrency is 1 in tests
        try:
            await tasks.check_inboxes(database)
        finally:
            tasks._scanning.discard(other_run)
        assert checked == ["known@gmail.com"]
        await tasks.check_inboxes(database)  # the other run is over: now it is read
        assert checked == ["known@gmail.com", "known@gmail.com", "new@gmail.com"]
        assert not tasks._checking
        assert not tasks._scanning

    async def test_gmail_is_read_with_no_database_connection_held(
        self,
        committing_database: Database,
        gmail_settings: Settings,
        fake_google: FakeGoogle,
        fake_gmail: FakeGmail,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """A full read takes a minute or more: a transaction open all along would hold a
        pooled connection (and SQLite's write lock, stopping every other writer). A token
        about to expire is refreshed before, in a transaction of its own."""
        async with committing_database.session() as session:
            user = await create_user(session, "asha@example.com")
            fresh = await watched_mailbox(session, fake_google, user, "a@gmail.com", threads=3)
            expiring = await watched_mailbox(session, fake_google, user, "b@gmail.com")
            expiring.access_token_expires_at = utcnow() + timedelta(minutes=2)
        pool = committing_database.engine.sync_engine.pool
        held: list[int] = []
        real = GmailClient._call

        async def noting(client: GmailClient, method_id: str, *args: Any, **kw: Any) -> Any:
            held.append(pool.checkedout())  # type: ignore[attr-defined]
            return await real(client, method_id, *args, **kw)

        monkeypatch.setattr(GmailClient, "_call", noting)
        await tasks.check_inboxes(committing_database)
        assert held == [0] * 7  # getProfile, then threads.get of each thread, per mailbox
        assert fake_google.oauth.refresh_calls == 1
        async with committing_database.session() as session:
            stored = {m.address: m for m in await readable_mailboxes(session)}
        for mailbox in (fresh, expiring):
            assert stored[mailbox.address].history_id == str(
                fake_gmail.mailbox(mailbox.address).history_id
            )
        assert stored["b@gmail.com"].access_token_expires_at > utcnow() + timedelta(minutes=30)

    async def test_a_mailbox_deleted_while_it_is_read_is_skipped_and_the_others_checked(
        self,
        committing_database: Database,
        gmail_settings: Settings,
        fake_google: FakeGoogle,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        async with committing_database.session() as session:
            leaving = await create_user(session, "leaving@example.com")
            staying = await create_user(session, "staying@example.com")
            gone = await watched_mailbox(session, fake_google, leaving, "gone@gmail.com")
            kept = await watched_mailbox(session, fake_google, staying, "kept@gmail.com")
        real = tasks.check_mailbox

        async def deleting(session: AsyncSession, mailbox: Mailbox, **kw: Any) -> inbox.InboxCheck:
            if mailbox.id == gone.id:  # the account is deleted while Gmail is read
                async with committing_database.session() as other:
                    await other.execute(delete(User).where(User.id == leaving.id))
            return await real(session, mailbox, **kw)

        monkeypatch.setattr(tasks, "check_mailbox", deleting)
        assert await tasks.check_inboxes(committing_database) == 0
        async with committing_database.session() as session:
            assert await session.get(Mailbox, gone.id) is None
            stored = await session.get(Mailbox, kept.id)
        assert stored is not None
        assert stored.history_id is not None

    async def test_mailboxes_are_checked_side_by_side_up_to_the_concurrency(
        self,
        committing_database: Database,
        gmail_settings: Settings,
        fake_google: FakeGoogle,
        fake_gmail: FakeGmail,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        use_settings(gmail_settings.model_copy(update={"inbox_check_concurrency": 2}))
        async with committing_database.session() as session:
            user = await create_user(session, "asha@example.com")
            for n in range(4):
                await watched_mailbox(session, fake_google, user, f"m{n}@gmail.com")
        in_flight, most = 0, 0
        two_at_once = asyncio.Event()
        real = tasks.check_mailbox

        async def overlapping(
            session: AsyncSession, mailbox: Mailbox, **kw: Any
        ) -> inbox.InboxCheck:
            nonlocal in_flight, most
            in_flight += 1
            most = max(most, in_flight)
            if in_flight == 2:
                two_at_once.set()
            try:
                # Each waits until two are in flight: one at a time would never get there.
                await asyncio.wait_for(two_at_once.wait(), timeout=30)
                return await real(session, mailbox, **kw)
            finally:
                in_flight -= 1

        monkeypatch.setattr(tasks, "check_mailbox", overlapping)
        assert await tasks.check_inboxes(committing_database) == 0
        assert most == 2
        assert fake_gmail.called(PROFILE) == 4
        async with committing_database.session() as session:
            stored = {m.address: m.history_id for m in await readable_mailboxes(session)}
        history_id = str(fake_gmail.mailbox("m0@gmail.com").history_id)
        assert stored == {f"m{n}@gmail.com": history_id for n in range(4)}
