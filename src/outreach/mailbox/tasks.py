"""Mailbox jobs: the reply and bounce check of every readable Gmail mailbox."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Collection

from sqlalchemy.orm.exc import StaleDataError

from outreach.config import get_settings
from outreach.kit.db import Database, get_database
from outreach.kit.errors import AppError
from outreach.kit.jobs import job
from outreach.kit.logging import get_logger
from outreach.kit.shutdown import stop_requested
from outreach.mailbox.events import tracked_threads
from outreach.mailbox.inbox import (
    check_mailbox,
    readable_mailboxes,
    refresh_for_check,
    token_needs_refresh,
)
from outreach.mailbox.providers import MailboxUnavailable
from outreach.models import Mailbox

log = get_logger("outreach.mailbox.tasks")

# Mailboxes being checked in this process, and of those the ones reading every thread
# (no history id yet): a run that overlaps a slow earlier one leaves them to it.
_checking: set[uuid.UUID] = set()
_scanning: set[uuid.UUID] = set()


async def check_inboxes(database: Database) -> int:
    """Check each readable mailbox, ``inbox_check_concurrency`` at a time; one failing
    mailbox (Gmail down, access revoked) is logged and never keeps the others from being
    read. Returns how many findings were published.

    Mailboxes with a history id go first (one call each when nothing changed); those
    without one read every tracked thread, a minute or more each under the quota. A run
    that starts while an earlier one is still reading skips the mailboxes it is on, and
    starts no more such full reads than the concurrency allows in the whole process."""
    async with database.session() as session:
        mailboxes = await readable_mailboxes(session)  # shared read-only by the checks
    order = sorted(mailboxes, key=lambda m: m.history_id is None)  # stable: cheap first
    limit = asyncio.Semaphore(get_settings().inbox_check_concurrency)

    async def check(mailbox: Mailbox) -> int:
        async with limit:
            if stop_requested():  # the next run (or process) checks it
                return 0
            return await _check_one(database, mailbox)

    results = await asyncio.gather(*(check(m) for m in order), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result  # not a mailbox's own failure (those are caught): let the job fail
    return sum(r for r in results if isinstance(r, int))


async def _check_one(database: Database, mailbox: Mailbox) -> int:
    full_scan = mailbox.history_id is None
    if mailbox.id in _checking:
        return 0
    if full_scan and len(_scanning) >= get_settings().inbox_check_concurrency:
        return 0  # the process reads enough mailboxes thread by thread already
    _checking.add(mailbox.id)
    if full_scan:
        _scanning.add(mailbox.id)
    try:
        return await _check_in_sessions(database, mailbox)
    finally:
        _checking.discard(mailbox.id)
        _scanning.discard(mailbox.id)


async def _check_in_sessions(database: Database, mailbox: Mailbox) -> int:
    """One mailbox, with no transaction open while Gmail is read (reading every thread
    takes a minute or more: an open one would hold a pooled connection, and on SQLite
    the write lock, all along): its token refreshed first if it must be, the threads
    looked up in short sessions, the findings published in one transaction at the end."""
    mailbox_id = mailbox.id

    async def tracked(thread_ids: Collection[str] | None) -> set[str]:
        async with database.session() as session:
            return await tracked_threads(session, mailbox_id, thread_ids)

    try:
        fresh = await _with_usable_token(database, mailbox)
        if fresh is None:
            return 0
        async with database.session() as session:
            try:
                return (await check_mailbox(session, fresh, tracked=tracked)).findings
            except MailboxUnavailable as exc:  # recorded in this session: commit that
                _unavailable(mailbox_id, exc)
                return 0
    except StaleDataError:  # the mailbox was deleted (its account) during the check
        log.info("inbox_mailbox_gone", mailbox_id=str(mailbox_id))
        return 0
    except AppError as exc:
        log.warning("inbox_check_failed", mailbox_id=str(mailbox_id), error=str(exc))
        return 0


async def _with_usable_token(database: Database, mailbox: Mailbox) -> Mailbox | None:
    """``mailbox``, or reloaded with its token refreshed in a short transaction of its
    own when the first call would refresh it (None: gone, or access revoked)."""
    if not token_needs_refresh(mailbox):
        return mailbox
    async with database.session() as session:
        try:
            return await refresh_for_check(session, mailbox.id)
        except MailboxUnavailable as exc:  # recorded in this session: commit that
            _unavailable(mailbox.id, exc)
            return None


def _unavailable(mailbox_id: uuid.UUID, exc: MailboxUnavailable) -> None:
    log.warning("inbox_mailbox_unavailable", mailbox_id=str(mailbox_id), error=str(exc))


# Every 5 minutes: a check costs one Gmail call per mailbox when nothing changed.
INBOX_CHECK_SECONDS = 300


@job("mailbox.check_inboxes", every_seconds=INBOX_CHECK_SECONDS, max_attempts=1)
async def check_inboxes_job() -> int:
    """Every few minutes: replies, auto-replies and bounces in our Gmail threads."""
    return await check_inboxes(get_database())
