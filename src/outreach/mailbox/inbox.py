"""Reading what comes back: replies, auto-replies and bounces in our Gmail threads.

Only a full-mode Gmail mailbox (``gmail.metadata``) can be read; SMTP and send-only
Gmail cannot, and the campaign API says so. Each check of a mailbox asks Gmail what was
added since the mailbox's stored history id (``users.history.list``: one call, 2 quota
units, when nothing changed), then reads the headers (``messages.get format=metadata``)
of the new messages that sit in threads the campaign domain tracks. When Gmail no longer
has the history id (404) or there is none yet, it reads each tracked thread instead
(``threads.get format=metadata``) after noting the mailbox's current history id, so
nothing that arrives meanwhile is missed. Every call of a check keeps to a pace per
mailbox (``OUTREACH_INBOX_CHECK_UNITS_PER_SECOND``, 200 of Gmail's 250 quota units per
user per second, spread evenly): reading 1,000 threads (10 units each) takes at least
50 s and leaves room for the mailbox's sending. Findings are published through
``events.emit_inbox_message`` in the same transaction as the new history id: a crash
re-reads the same history, and the campaign domain stores each finding once.

With ``gmail.metadata`` the body of a bounce cannot be read; Gmail's delivery-status
notifications name the bounced message in ``In-Reply-To``/``References`` (and the
address in ``X-Failed-Recipients``), which is what we match on.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from email.utils import getaddresses, parseaddr
from functools import partial
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from outreach.config import Settings, get_settings
from outreach.kit.clock import utcnow
from outreach.kit.db import in_session
from outreach.kit.logging import get_logger
from outreach.mailbox import repository
from outreach.mailbox.events import (
    InboxMessageEvent,
    emit_inbox_message,
    tracked_threads,
    watched_mailboxes,
)
from outreach.mailbox.gmail import (
    QUOTA_UNITS,
    GmailClient,
    GmailError,
    GmailNotFound,
    GmailProvider,
    GmailUnauthorized,
    QuotaBudget,
)
from outreach.mailbox.oauth import GMAIL_METADATA
from outreach.mailbox.providers import MailboxRevoked
from outreach.mailbox.service import REFRESH_MARGIN, mailbox_service
from outreach.models import EmailEventKind, Mailbox, MailboxMode, MailboxProvider, MailboxStatus

log = get_logger("outreach.mailbox.inbox")

THREADS_GET = "gmail.users.threads.get"
HEADERS = [
    "From",
    "Subject",
    "Auto-Submitted",
    "X-Autoreply",
    "X-Autorespond",
    "Precedence",
    "X-Failed-Recipients",
    "Content-Type",
    "In-Reply-To",
    "References",
]
_OWN_LABELS = {"SENT", "DRAFT"}
_DAEMONS = {"mailer-daemon", "postmaster"}
_MESSAGE_ID = re.compile(r"<[^<>\s]+>")
_OUT_OF_OFFICE = re.compile(
    r"out of (the )?office|automatic reply|auto[- ]?reply|autoresponse|on vacation|"
    r"on leave|away from (the|my) (office|desk)|abwesenheit|absence",
    re.IGNORECASE,
)
_PERMANENT_FAILURE = re.compile(r"failure|undeliverable|failed|returned", re.IGNORECASE)


# -- classification -----------------------------------------------------------------------


def _is_delivery_report(headers: Mapping[str, str], sender: str) -> bool:
    content_type = headers.get("content-type", "").lower()
    report = "multipart/report" in content_type and "delivery-status" in content_type
    return report or sender.split("@", 1)[0] in _DAEMONS


def _is_auto_reply(headers: Mapping[str, str]) -> bool:
    auto_submitted = headers.get("auto-submitted", "").strip().lower()
    if auto_submitted and auto_submitted != "no":
        return True
    if "x-autoreply" in headers or "x-autorespond" in headers:
        return True
    if headers.get("precedence", "").strip().lower() == "auto_reply":
        return True
    return bool(_OUT_OF_OFFICE.search(headers.get("subject", "")))


def classify(headers: Mapping[str, str], *, own_address: str) -> EmailEventKind | None:
    """What a message in one of our threads means (headers keyed in lower case): None for
    the sender's own messages and for delay notices that still retry."""
    sender = parseaddr(headers.get("from", ""))[1].lower()
    if sender == own_address.lower():
        return None
    if _is_delivery_report(headers, sender):
        permanent = "x-failed-recipients" in headers or bool(
            _PERMANENT_FAILURE.search(headers.get("subject", ""))
        )
        return EmailEventKind.bounced if permanent else None
    if _is_auto_reply(headers):
        return EmailEventKind.auto_reply
    return EmailEventKind.replied


def _headers_of(message: Mapping[str, Any]) -> dict[str, str]:
    return {
        str(h.get("name", "")).lower(): str(h.get("value", ""))
        for h in message.get("payload", {}).get("headers", [])
    }


# -- one mailbox --------------------------------------------------------------------------


@dataclass
class InboxCheck:
    """What one check of one mailbox cost and found."""

    calls: list[str] = field(default_factory=list)  # Gmail method ids, in order
    findings: int = 0
    full_scan: bool = False

    @property
    def quota_units(self) -> int:
        return sum(QUOTA_UNITS.get(method, 5) for method in self.calls)


_paces: dict[float, QuotaBudget] = {}


def inbox_pace(settings: Settings) -> QuotaBudget:
    """The process's pace for reply checks, per mailbox: ``inbox_check_units_per_second``
    with room for one ``threads.get`` at a time, so reading a thousand threads is spread
    evenly rather than bursting at the top of each second."""
    rate = float(settings.inbox_check_units_per_second)
    return _paces.setdefault(rate, QuotaBudget(rate, burst=QUOTA_UNITS[THREADS_GET]))


# Which of these thread ids (None: all) of the mailbox are ours to read.
ThreadLookup = Callable[[Collection[str] | None], Awaitable[set[str]]]


class _CountingClient:
    """The mailbox's Gmail client, noting each call for the check's report and keeping
    the check to its pace (every call also spends from the mailbox's own Gmail budget)."""

    def __init__(
        self, client: GmailClient, check: InboxCheck, pace: QuotaBudget, mailbox: Mailbox
    ) -> None:
        self.client, self.check, self.pace, self.key = client, check, pace, str(mailbox.id)

    async def _call(self, method: str) -> None:
        self.check.calls.append(method)
        await self.pace.spend(self.key, QUOTA_UNITS[method])

    async def history(self, start: str, page_token: str | None) -> Any:
        await self._call("gmail.users.history.list")
        return await self.client.list_history(start, page_token)

    async def profile(self) -> dict[str, Any]:
        await self._call("gmail.users.getProfile")
        return await self.client.get_profile()

    async def thread(self, thread_id: str) -> list[dict[str, Any]]:
        await self._call(THREADS_GET)
        try:
            thread = await self.client.get_thread_headers(thread_id, HEADERS)
        except GmailNotFound:  # the user deleted it
            return []
        return list(thread.get("messages", []))

    async def message(self, message_id: str) -> list[dict[str, Any]]:
        await self._call("gmail.users.messages.get")
        try:
            return [await self.client.get_message_headers(message_id, HEADERS)]
        except GmailNotFound:  # deleted, or a draft since sent
            return []


async def _added_since(
    gmail: _CountingClient, tracked: ThreadLookup, start: str
) -> tuple[list[dict[str, Any]], str]:
    """New messages in tracked threads since ``start`` and the history id to store."""
    added: dict[str, str] = {}  # message id -> thread id
    page_token: str | None = None
    seen_tokens: set[str] = set()
    while True:
        page = await gmail.history(start, page_token)
        for record in page.get("history", []):
            for item in record.get("messagesAdded", []):
                message = item.get("message", {})
                if not _OWN_LABELS & set(message.get("labelIds", [])):
                    added[str(message["id"])] = str(message["threadId"])
        page_token = page.get("nextPageToken")
        if not page_token:
            break
        if page_token in seen_tokens:  # never loop on a page Gmail already gave
            raise GmailError(f"users.history.list gave the page token {page_token!r} twice")
        seen_tokens.add(page_token)
    ours = await tracked(set(added.values())) if added else set()
    messages = [m for mid, tid in added.items() if tid in ours for m in await gmail.message(mid)]
    return messages, str(page["historyId"])


async def _scan_threads(
    gmail: _CountingClient, tracked: ThreadLookup
) -> tuple[list[dict[str, Any]], str]:
    """Every message of every tracked thread, and the history id noted before reading."""
    history_id = str((await gmail.profile())["historyId"])
    messages: list[dict[str, Any]] = []
    for thread_id in sorted(await tracked(None)):
        messages.extend(await gmail.thread(thread_id))
    return messages, history_id


def _event(mailbox: Mailbox, message: Mapping[str, Any]) -> InboxMessageEvent | None:
    if _OWN_LABELS & set(message.get("labelIds", [])):
        return None
    headers = _headers_of(message)
    kind = classify(headers, own_address=mailbox.address)
    if kind is None:
        return None
    referenced = _MESSAGE_ID.findall(headers.get("in-reply-to", "") + headers.get("references", ""))
    failed = [addr.lower() for _, addr in getaddresses([headers.get("x-failed-recipients", "")])]
    return InboxMessageEvent(
        mailbox_id=mailbox.id,
        user_id=mailbox.user_id,
        kind=kind,
        gmail_message_id=str(message["id"]),
        thread_id=str(message["threadId"]),
        from_address=parseaddr(headers.get("from", ""))[1].lower(),
        referenced_message_ids=tuple(dict.fromkeys(referenced)),
        failed_recipients=tuple(a for a in failed if a),
        received_at=utcnow(),
        detail=headers.get("subject", "")[:300],
    )


def token_needs_refresh(mailbox: Mailbox) -> bool:
    """Whether the first Gmail call would refresh the access token (it lasts less than
    ``REFRESH_MARGIN`` more): then :func:`refresh_for_check` does it first."""
    expires = mailbox.access_token_expires_at
    return (
        mailbox.access_token_encrypted is None
        or expires is None
        or expires - REFRESH_MARGIN <= utcnow()
    )


async def refresh_for_check(session: AsyncSession, mailbox_id: uuid.UUID) -> Mailbox | None:
    """The mailbox reloaded, its access token refreshed in this short transaction rather
    than in the check's, which would then stay open while Gmail is read. Raises
    ``MailboxRevoked`` after recording it when Google refuses the refresh."""
    mailbox = await session.get(Mailbox, mailbox_id)
    if mailbox is not None:
        await mailbox_service.access_token(session, mailbox)
    return mailbox


async def check_mailbox(
    session: AsyncSession, mailbox: Mailbox, *, tracked: ThreadLookup | None = None
) -> InboxCheck:
    """Read what arrived in ``mailbox`` since its last check and publish what it means.

    Gmail is read first; ``session`` is used only after, to publish the findings with the
    new history id (before, only to refresh a token or record a revocation). ``tracked``
    says which threads are ours (default: a query in ``session``); the job passes one
    reading from short sessions of its own and a fresh ``session``, so no transaction
    stays open while Gmail answers (reading every thread takes a minute or more).
    ``mailbox`` may be loaded elsewhere: what is written goes on the session's own copy.

    Raises the mailbox's errors (``MailboxRevoked`` after recording it, Gmail errors);
    the stored history id moves only when the check completed."""
    provider = await mailbox_service.provider_for(session, mailbox)
    assert isinstance(provider, GmailProvider), "only Gmail mailboxes can be read"
    check = InboxCheck()
    gmail = _CountingClient(provider.client, check, inbox_pace(get_settings()), mailbox)
    lookup = tracked or partial(tracked_threads, session, mailbox.id)
    try:
        messages, history_id = await _read(gmail, lookup, mailbox, check)
    except GmailUnauthorized as exc:
        reason = f"Gmail refused access: {exc}"
        await mailbox_service.mark_unavailable(
            session, await in_session(session, mailbox), status=MailboxStatus.revoked, reason=reason
        )
        raise MailboxRevoked(reason) from exc
    await _publish(session, mailbox, messages, history_id, check)
    if check.full_scan or check.findings:
        log.info(
            "inbox_checked",
            mailbox_id=str(mailbox.id),
            full_scan=check.full_scan,
            calls=len(check.calls),
            quota_units=check.quota_units,
            findings=check.findings,
        )
    return check


async def _read(
    gmail: _CountingClient, tracked: ThreadLookup, mailbox: Mailbox, check: InboxCheck
) -> tuple[list[dict[str, Any]], str]:
    if mailbox.history_id is not None:
        try:
            return await _added_since(gmail, tracked, mailbox.history_id)
        except GmailNotFound:
            log.info("inbox_history_expired", mailbox_id=str(mailbox.id))
    check.full_scan = True
    return await _scan_threads(gmail, tracked)


async def _publish(
    session: AsyncSession,
    mailbox: Mailbox,
    messages: list[dict[str, Any]],
    history_id: str,
    check: InboxCheck,
) -> None:
    for message in messages:
        event = _event(mailbox, message)
        if event is not None:
            await emit_inbox_message(session, event)
            check.findings += 1
    own = await in_session(session, mailbox)
    own.history_id = history_id
    own.inbox_checked_at = utcnow()
    await session.flush()


def can_read_replies(mailbox: Mailbox) -> bool:
    """Only full-mode Gmail with ``gmail.metadata`` lets us see replies and bounces."""
    return (
        mailbox.provider == MailboxProvider.gmail
        and mailbox.mode == MailboxMode.full
        and GMAIL_METADATA in (mailbox.granted_scopes or [])
    )


async def readable_mailboxes(session: AsyncSession) -> list[Mailbox]:
    """Active full-mode Gmail mailboxes holding ``gmail.metadata``, with threads to watch."""
    readable = await repository.list_readable_gmail(session)
    watched = await watched_mailboxes(session, [m.id for m in readable]) if readable else set()
    return [m for m in readable if m.id in watched]
