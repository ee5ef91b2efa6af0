"""Mailbox jobs: the reply and bounce check of every readable Gmail mailbox."""

from __future__ import annotations

import uuid

from outreach.kit.db import Database, get_database
from outreach.kit.errors import AppError
from outreach.kit.jobs import job
from outreach.kit.logging import get_logger
from outreach.mailbox.inbox import check_mailbox, readable_mailboxes
from outreach.mailbox.providers import MailboxUnavailable
from outreach.models import Mailbox

log = get_logger("outreach.mailbox.tasks")


async def check_inboxes(database: Database) -> int:
    """Check each readable mailbox in its own transaction; one failing mailbox (Gmail
    down, access revoked) is logged and never keeps the others from being read.
    Returns how many findings were published."""
    async with database.session() as session:
        mailbox_ids = [m.id for m in await readable_mailboxes(session)]
    findings = 0
    for mailbox_id in mailbox_ids:
        findings += await _check_one(database, mailbox_id)
    return findings


async def _check_one(database: Database, mailbox_id: uuid.UUID) -> int:
    try:
        async with database.session() as session:
            mailbox = await session.get(Mailbox, mailbox_id)
            if mailbox is None:
                return 0
            try:
                return (await check_mailbox(session, mailbox)).findings
            except MailboxUnavailable as exc:
                # Recorded in this session (revoked, campaigns paused): commit that.
                log.warning("inbox_mailbox_unavailable", mailbox_id=str(mailbox_id), error=str(exc))
                return 0
    except AppError as exc:
        log.warning("inbox_check_failed", mailbox_id=str(mailbox_id), error=str(exc))
        return 0


# Every 5 minutes: a check costs one Gmail call per mailbox when nothing changed.
INBOX_CHECK_SECONDS = 300


@job("mailbox.check_inboxes", every_seconds=INBOX_CHECK_SECONDS, max_attempts=1)
async def check_inboxes_job() -> int:
    """Every few minutes: replies, auto-replies and bounces in our Gmail threads."""
    return await check_inboxes(get_database())
