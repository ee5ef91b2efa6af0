"""The Gmail REST client for the calls we use, over httpx.

Reads retry with exponential backoff and full jitter on 429, 5xx and
``rateLimitExceeded``/``userRateLimitExceeded`` 403s, honouring ``Retry-After``.
The sending calls (``drafts.send``, ``messages.send``) are never retried after a
timeout or a 5xx: the message may have gone out, so :class:`SendOutcomeUnknown`
is raised and the caller reconciles (``find_sent``). A 429 or a rate-limit 403 on a
send is Gmail refusing it before doing anything, so that is retried. What failed
before the request was written (no connection, no access token) raises
:class:`NothingSent` (safe to retry later); any other 4xx is Gmail refusing the
request for good (:class:`GmailRefused`, a :class:`MessageRefused`).
A per-mailbox :class:`QuotaBudget` keeps us under Gmail's 250 units per user per
second on our own.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any, NoReturn, TypeVar

import httpx

from outreach.kit.errors import NotFound, ServiceUnavailable, TooManyRequests
from outreach.kit.logging import get_logger
from outreach.mailbox.mime import EncodedMessage
from outreach.mailbox.oauth import GoogleOAuthUnavailable
from outreach.mailbox.providers import (
    DraftsNotSupported,
    MailboxProfile,
    MessageRefused,
    NothingSent,
    SendOutcomeUnknown,
    SendsNotConfirmable,
)
from outreach.models import MailboxProvider

T = TypeVar("T")

log = get_logger("outreach.mailbox.gmail")

# Gmail's quota units per method (developers.google.com/gmail/api/reference/quota).
QUOTA_UNITS = {
    "gmail.users.getProfile": 1,
    "gmail.users.drafts.create": 10,
    "gmail.users.drafts.send": 100,
    "gmail.users.drafts.get": 5,
    "gmail.users.drafts.delete": 10,
    "gmail.users.messages.send": 100,
    "gmail.users.messages.list": 5,
    "gmail.users.messages.get": 5,
    "gmail.users.history.list": 2,
    "gmail.users.threads.get": 10,
}
SENDING_METHODS = {"gmail.users.drafts.send", "gmail.users.messages.send"}
RATE_LIMIT_REASONS = {"rateLimitExceeded", "userRateLimitExceeded"}
MAX_RETRY_AFTER_SECONDS = 60.0


class GmailError(ServiceUnavailable):
    code, title = "gmail_error", "Gmail answered with an error"


class GmailUnreachable(NothingSent):
    code, title = "gmail_unreachable", "Gmail could not be reached; nothing was sent"


class GmailTokenUnavailable(NothingSent):
    code, title = "gmail_token_unavailable", "No access token could be had; nothing was sent"


class GmailRefused(MessageRefused):
    code, title = "gmail_refused", "Gmail refused the request"


class GmailRateLimited(TooManyRequests):
    code, title = "gmail_rate_limited", "Gmail is rate limiting this mailbox"


class GmailDailyLimitExceeded(TooManyRequests):
    code, title = "gmail_daily_limit", "This mailbox reached Gmail's daily sending limit"


class GmailNotFound(NotFound):
    code, title = "gmail_not_found", "Gmail has no such item"


class GmailUnauthorized(Exception):
    """Gmail refused the access token even after a refresh (access withdrawn)."""


class GmailForbidden(GmailRefused):
    code, title = "gmail_forbidden", "Gmail refused the call (missing permission)"


class QuotaBudget:
    """A token bucket per mailbox: ``units_per_second`` refilled continuously, holding at
    most ``burst`` units (default: one second's worth).

    Per process: with N worker processes sharing mailboxes, give each 1/N of
    Gmail's 250 units per second (``OUTREACH_GMAIL_QUOTA_UNITS_PER_SECOND``).
    """

    def __init__(
        self,
        units_per_second: float,
        *,
        burst: float | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.rate = float(units_per_second)
        self.capacity = self.rate if burst is None else float(burst)
        self._monotonic = monotonic
        self._sleep = sleep
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (units, at)
        self._locks: dict[str, asyncio.Lock] = {}

    async def spend(self, key: str, units: int) -> float:
        """Take ``units`` from ``key``'s bucket, waiting until they are there; returns the wait."""
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            now = self._monotonic()
            available, at = self._buckets.get(key, (self.capacity, now))
            available = min(self.capacity, available + (now - at) * self.rate)
            wait = max(0.0, (units - available) / self.rate)
            if wait:
                await self._sleep(wait)
                now = self._monotonic()
                available += wait * self.rate
            self._buckets[key] = (available - units, now)
            return wait


@dataclass
class GmailClient:
    """One mailbox's Gmail API. ``access_token(rejected)`` returns a usable token;
    given the token Gmail just rejected, it refreshes (unless another worker already did)."""

    http: httpx.AsyncClient
    base_url: str
    access_token: Callable[[str | None], Awaitable[str]]
    budget: QuotaBudget
    budget_key: str
    max_retries: int = 4
    retry_base_seconds: float = 0.5
    timeout: float = 30.0
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep)

    # -- the calls ------------------------------------------------------------------

    async def get_profile(self) -> dict[str, Any]:
        return await self._call("gmail.users.getProfile", "GET", "profile")

    async def create_draft(self, raw: str, thread_id: str | None = None) -> dict[str, Any]:
        body = {"message": _message_body(raw, thread_id)}
        return await self._call("gmail.users.drafts.create", "POST", "drafts", json=body)

    async def send_draft(self, draft_id: str) -> dict[str, Any]:
        return await self._call(
            "gmail.users.drafts.send", "POST", "drafts/send", json={"id": draft_id}
        )

    async def get_draft(self, draft_id: str) -> dict[str, Any] | None:
        """The draft (ids and labels only), or None when Gmail no longer has it."""
        try:
            # format=minimal: full and raw are refused whenever gmail.metadata is granted.
            return await self._call(
                "gmail.users.drafts.get", "GET", f"drafts/{draft_id}", params={"format": "minimal"}
            )
        except GmailNotFound:
            return None

    async def delete_draft(self, draft_id: str) -> None:
        await self._call("gmail.users.drafts.delete", "DELETE", f"drafts/{draft_id}")

    async def send_message(self, raw: str, thread_id: str | None = None) -> dict[str, Any]:
        return await self._call(
            "gmail.users.messages.send", "POST", "messages/send", json=_message_body(raw, thread_id)
        )

    async def list_sent(
        self, *, max_results: int = 100, page_token: str | None = None
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"labelIds": "SENT", "maxResults": max_results}
        if page_token:
            params["pageToken"] = page_token
        return await self._call("gmail.users.messages.list", "GET", "messages", params=params)

    async def get_message_headers(self, message_id: str, headers: list[str]) -> dict[str, Any]:
        params = [("format", "metadata"), *(("metadataHeaders", name) for name in headers)]
        return await self._call(
            "gmail.users.messages.get", "GET", f"messages/{message_id}", params=params
        )

    async def list_history(self, start_history_id: str, page_token: str | None = None) -> Any:
        """Messages added since ``start_history_id`` (404 when Gmail no longer has it)."""
        params: dict[str, Any] = {
            "startHistoryId": start_history_id,
            "historyTypes": "messageAdded",
            "maxResults": 500,
        }
        if page_token:
            params["pageToken"] = page_token
        return await self._call("gmail.users.history.list", "GET", "history", params=params)

    async def get_thread_headers(self, thread_id: str, headers: list[str]) -> dict[str, Any]:
        params = [("format", "metadata"), *(("metadataHeaders", name) for name in headers)]
        return await self._call(
            "gmail.users.threads.get", "GET", f"threads/{thread_id}", params=params
        )

    # -- the machinery -------------------------------------------------------------

    async def _call(
        self,
        method_id: str,
        http_method: str,
        path: str,
        *,
        params: Any = None,
        json: Any = None,
    ) -> dict[str, Any]:
        url = _api_url(self.base_url, path)
        sending = method_id in SENDING_METHODS
        token = await self.access_token(None)
        refreshed = False
        attempt = 0
        while True:
            await self.budget.spend(self.budget_key, QUOTA_UNITS.get(method_id, 5))
            try:
                response = await self.http.request(
                    http_method,
                    url,
                    params=params,
                    json=json,
                    headers={"Authorization": f"Bearer {token}"},
                    timeout=self.timeout,
                )
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                # Nothing reached Gmail: safe to retry, even a send.
                error: Exception = GmailUnreachable(f"Gmail could not be reached: {exc!r}")
                delay = None
            except httpx.HTTPError as exc:
                if sending:
                    raise SendOutcomeUnknown(f"{method_id} did not answer: {exc!r}") from exc
                error, delay = GmailError(f"Gmail did not answer: {exc!r}"), None
            else:
                if response.status_code < 300:
                    return response.json() if response.content else {}
                if response.status_code == 401:
                    if refreshed:
                        raise GmailUnauthorized(f"{method_id}: 401 after a token refresh")
                    token, refreshed = await self.access_token(token), True
                    continue
                error, delay = self._classify(method_id, response, sending)
            if attempt >= self.max_retries:
                raise error
            attempt += 1
            await self.sleep(self._backoff(attempt, delay))
            log.info("gmail_retry", method=method_id, attempt=attempt, error=str(error))

    def _classify(
        self, method_id: str, response: httpx.Response, sending: bool
    ) -> tuple[Exception, float | None]:
        """The error for a failed response, and (for retryable ones) Retry-After; raises
        at once for errors that must not be retried."""
        status = response.status_code
        reasons, message = _error_reasons(response)
        retry_after = _retry_after(response)
        if "dailyLimitExceeded" in reasons:
            raise GmailDailyLimitExceeded(f"{method_id}: {message}")
        if status == 429 or (status == 403 and reasons & RATE_LIMIT_REASONS):
            return GmailRateLimited(f"{method_id}: {message}", retry_after=retry_after), retry_after
        if status >= 500:
            if sending:
                raise SendOutcomeUnknown(f"{method_id} answered {status}: {message}")
            return GmailError(f"{method_id} answered {status}: {message}"), retry_after
        if status == 404:
            raise GmailNotFound(f"{method_id}: {message}")
        if status == 403:
            raise GmailForbidden(f"{method_id}: {message}", reasons=sorted(reasons))
        raise GmailRefused(f"{method_id} answered {status}: {message}", gmail_status=status)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, MAX_RETRY_AFTER_SECONDS)
        # Full jitter (AWS architecture blog): uniform in [0, base * 2^attempt].
        return random.uniform(0, self.retry_base_seconds * 2**attempt)


@lru_cache(maxsize=256)
def _api_url(base_url: str, path: str) -> httpx.URL:
    """A parsed ``httpx.URL`` per endpoint, made once: httpx parses a string URL on every
    request, which is a good part of what a send costs in this process."""
    return httpx.URL(f"{base_url.rstrip('/')}/gmail/v1/users/me/{path}")


def _message_body(raw: str, thread_id: str | None) -> dict[str, str]:
    """A Message resource to create: Gmail files it in ``thread_id`` when it answers a
    message of that thread under the same subject (our follow-ups do)."""
    return {"raw": raw, "threadId": thread_id} if thread_id else {"raw": raw}


def _error_reasons(response: httpx.Response) -> tuple[set[str], str]:
    try:
        error = response.json().get("error", {})
        reasons = {str(item.get("reason")) for item in error.get("errors", []) if item}
        return reasons, str(error.get("message", response.reason_phrase))
    except (ValueError, AttributeError):
        return set(), response.reason_phrase


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


ORIGINAL_ID_HEADER = "X-Google-Original-Message-ID"
FIND_SENT_MAX_SCAN = 200


class GmailProvider:
    """A Gmail mailbox behind the provider interface (see ``providers.py``).

    ``on_revoked(reason)`` marks the mailbox revoked in the caller's session and
    raises ``MailboxRevoked``; it is called when Gmail refuses a freshly refreshed token.
    """

    name = MailboxProvider.gmail

    def __init__(
        self,
        client: GmailClient,
        *,
        address: str,
        send_only: bool,
        on_revoked: Callable[[str], Awaitable[NoReturn]],
        verify_token: Callable[[], Awaitable[None]],
        on_daily_limit: Callable[[], Awaitable[datetime]],
    ) -> None:
        self.client = client
        self.address = address
        self.send_only = send_only
        self.supports_drafts = not send_only
        self.can_confirm_sends = not send_only
        self._on_revoked = on_revoked
        self._verify_token = verify_token
        self._on_daily_limit = on_daily_limit
        self.last_thread_id: str | None = None  # of the last draft created or message sent

    async def _guard(self, call: Awaitable[T]) -> T:
        try:
            return await call
        except GmailUnauthorized as exc:
            await self._on_revoked(f"Gmail refused access: {exc}")
            raise  # unreachable: on_revoked raises
        except GoogleOAuthUnavailable as exc:
            # The refresh comes before the call (or after its 401): the call never went.
            raise GmailTokenUnavailable(f"the access token could not be refreshed: {exc}") from exc
        except GmailDailyLimitExceeded as exc:
            retry_at = await self._on_daily_limit()
            raise GmailDailyLimitExceeded(
                f"{exc.detail}; sending resumes at {retry_at.isoformat()}",
                retry_at=retry_at.isoformat(),
            ) from exc

    def _need_drafts(self) -> None:
        if self.send_only:
            raise DraftsNotSupported("a send-only Gmail mailbox cannot create drafts")

    async def create_draft(self, message: EncodedMessage, *, thread_id: str | None = None) -> str:
        self._need_drafts()
        draft = await self._guard(self.client.create_draft(message.gmail_raw, thread_id))
        # Keep the thread: Gmail keeps it when the draft is sent (see find_sent).
        self.last_thread_id = draft.get("message", {}).get("threadId")
        return str(draft["id"])

    async def send_draft(self, draft_id: str) -> str:
        self._need_drafts()
        message = await self._guard(self.client.send_draft(draft_id))
        self.last_thread_id = message.get("threadId")
        return str(message["id"])

    async def send(self, message: EncodedMessage, *, thread_id: str | None = None) -> str:
        sent = await self._guard(self.client.send_message(message.gmail_raw, thread_id))
        self.last_thread_id = sent.get("threadId")
        return str(sent["id"])

    async def delete_draft(self, draft_id: str) -> None:
        self._need_drafts()
        await self._guard(self.client.delete_draft(draft_id))

    async def find_sent(
        self,
        *,
        rfc822_message_id: str,
        draft_id: str | None = None,
        thread_id: str | None = None,
    ) -> str | None:
        """Reconcile an unknown outcome: a draft that still exists was not sent; otherwise
        look through recent SENT messages (``q`` is not allowed with gmail.metadata) for
        our message: first by its thread (stored when the draft was made; the list
        carries thread ids, so this reads no headers), then by our Message-ID (Gmail may
        move it to X-Google-Original-Message-ID). Our drafts each start a new thread, so
        a SENT message in it is ours (follow-ups sharing a thread must match by id)."""
        if not self.can_confirm_sends:
            raise SendsNotConfirmable("send-only Gmail cannot read the mailbox to confirm a send")
        if draft_id is not None and await self._guard(self.client.get_draft(draft_id)) is not None:
            return None
        recent = await self._recent_sent()
        if thread_id is not None:
            for message_id, thread in recent:
                if thread == thread_id:
                    return message_id
        wanted = rfc822_message_id.strip()
        for message_id, _ in recent:
            if await self._has_message_id(message_id, wanted):
                return message_id
        return None

    async def _recent_sent(self) -> list[tuple[str, str | None]]:
        """(message id, thread id) of the latest SENT messages, newest first."""
        found: list[tuple[str, str | None]] = []
        page_token: str | None = None
        while len(found) < FIND_SENT_MAX_SCAN:
            page = await self._guard(self.client.list_sent(page_token=page_token))
            found += [(str(m["id"]), m.get("threadId")) for m in page.get("messages", [])]
            page_token = page.get("nextPageToken")
            if not page_token:
                break
        return found[:FIND_SENT_MAX_SCAN]

    async def _has_message_id(self, message_id: str, wanted: str) -> bool:
        message = await self._guard(
            self.client.get_message_headers(message_id, ["Message-ID", ORIGINAL_ID_HEADER])
        )
        headers = message.get("payload", {}).get("headers", [])
        values = {
            str(h.get("value", "")).strip().strip("<>")
            for h in headers
            if str(h.get("name", "")).lower() in {"message-id", ORIGINAL_ID_HEADER.lower()}
        }
        return wanted.strip("<>") in values

    async def verify(self) -> MailboxProfile:
        if self.send_only:
            # users.getProfile needs a read scope; a refresh proves the grant still stands.
            await self._verify_token()
            return MailboxProfile(
                address=self.address,
                provider=MailboxProvider.gmail,
                detail="send-only: access token refreshed (Gmail's profile needs a read scope)",
            )
        profile = await self._guard(self.client.get_profile())
        return MailboxProfile(
            address=str(profile["emailAddress"]).lower(),
            provider=MailboxProvider.gmail,
            detail="Gmail profile read",
        )
