"""A fake Gmail REST API that checks every request against Google's discovery document.

The document is the one shipped in ``google-api-python-client``
(``googleapiclient/discovery_cache/documents/gmail.v1.json``). For each call the
fake checks the HTTP method and path, that every query parameter is one the
method (or the API) declares, with the declared type, enum and repetition, that
the JSON body only has fields of the method's request schema, and that the
bearer token (issued by the fake Google's ``/token``) was granted one of the
``scopes`` the document lists for the method. As Gmail does, ``q`` and
``format=full|raw`` (also as the default) are refused whenever the token holds
``gmail.metadata``, even beside broader scopes.

It stores drafts and messages per account with Gmail's history (every added
message is a ``messageAdded`` record under an increasing, non-contiguous history
id), answers ``history.list`` and ``threads.get``, and lets a test deliver what a
correspondent's server would: a reply, an auto-reply or a bounce (a DSN from
``mailer-daemon@googlemail.com``) into one of our threads::

    fake_gmail.deliver_reply(GMAIL, sent_message, from_addr="lead@firm.com")
    fake_gmail.deliver_auto_reply(GMAIL, sent_message)
    fake_gmail.deliver_bounce(GMAIL, sent_message)
    fake_gmail.expire_history(GMAIL)    # older history ids now answer 404

A ``threadId`` given with a new message is kept only when Gmail would keep it:
the thread exists, ``In-Reply-To`` or ``References`` names a message of the thread,
and the subjects match once ``Re:`` prefixes are stripped; otherwise the message
starts a new thread, as Gmail does.

It can be told to fail::

    fake_gmail.fail("gmail.users.drafts.send", status=500, apply=True)  # sent, then 500
    fake_gmail.fail("gmail.users.getProfile", status=429, retry_after=0)
    fake_gmail.fail("gmail.users.messages.send", status=403, reason="dailyLimitExceeded")
    fake_gmail.delay("gmail.users.messages.send", 2.0)                  # slow
    fake_gmail.refuse("gmail.users.drafts.create", to="x@y.com")        # 400, every time

PYTEST_DONT_REWRITE
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import bisect
import itertools
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from importlib import resources
from types import TracebackType
from typing import Any, Self

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.google import FakeGoogle
from tests.fakes.server import FakeServer

METADATA_SCOPE = "https://www.googleapis.com/auth/gmail.metadata"
IMPLEMENTED = [
    "gmail.users.getProfile",
    "gmail.users.drafts.create",
    "gmail.users.drafts.get",
    "gmail.users.drafts.delete",
    "gmail.users.drafts.send",
    "gmail.users.messages.send",
    "gmail.users.messages.list",
    "gmail.users.messages.get",
    "gmail.users.history.list",
    "gmail.users.threads.get",
]
HISTORY_START = 1000
HISTORY_GAP = 7  # history ids increase with gaps, as Gmail's do
_RE_PREFIX = re.compile(r"^\s*((re|fwd?|aw)\s*:\s*)+", re.IGNORECASE)


def discovery_document() -> dict[str, Any]:
    path = resources.files("googleapiclient") / "discovery_cache/documents/gmail.v1.json"
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return document


def _methods(resource: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from resource.get("methods", {}).values()
    for child in resource.get("resources", {}).values():
        yield from _methods(child)


class GmailRequestError(Exception):
    def __init__(self, status: int, message: str, reason: str, api_status: str) -> None:
        super().__init__(message)
        self.status, self.message, self.reason, self.api_status = (
            status,
            message,
            reason,
            api_status,
        )

    def response(self) -> JSONResponse:
        return _error_response(self.status, self.message, self.reason, self.api_status)


def _error_response(
    status: int, message: str, reason: str, api_status: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    domain = "usageLimits" if "imit" in reason else "global"
    body = {
        "error": {
            "code": status,
            "message": message,
            "errors": [{"message": message, "domain": domain, "reason": reason}],
            "status": api_status,
        }
    }
    return JSONResponse(body, status_code=status, headers=headers)


def _bad(message: str) -> GmailRequestError:
    return GmailRequestError(400, message, "invalidArgument", "INVALID_ARGUMENT")


@dataclass
class StoredMessage:
    id: str
    thread_id: str
    raw: bytes
    labels: list[str]
    history_id: int = 0
    # (raw, its headers as text): a thread read a thousand times is parsed once.
    _headers: tuple[bytes, list[tuple[str, str]]] | None = field(
        default=None, repr=False, compare=False
    )

    @property
    def parsed(self) -> EmailMessage:
        message = BytesParser(policy=policy.default).parsebytes(self.raw)
        assert isinstance(message, EmailMessage)
        return message

    def header_items(self) -> list[tuple[str, str]]:
        if self._headers is None or self._headers[0] is not self.raw:
            self._headers = (self.raw, [(n, str(v)) for n, v in self.parsed.items()])
        return self._headers[1]

    def resource(self, fmt: str = "minimal", headers: list[str] | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"id": self.id, "threadId": self.thread_id, "labelIds": self.labels}
        if self.history_id:
            body["historyId"] = str(self.history_id)
        if fmt == "raw":
            body["raw"] = base64.urlsafe_b64encode(self.raw).decode()
        if fmt in {"metadata", "full"}:
            wanted = {h.lower() for h in headers or []}
            body["payload"] = {
                "headers": [
                    {"name": name, "value": value}
                    for name, value in self.header_items()
                    if not wanted or name.lower() in wanted
                ]
            }
        return body


@dataclass
class Mailbox:
    drafts: dict[str, StoredMessage] = field(default_factory=dict)  # draft id -> message
    messages: list[StoredMessage] = field(default_factory=list)  # oldest first
    history_id: int = HISTORY_START  # the mailbox's current history id
    oldest_history_id: int = HISTORY_START  # older start ids answer 404
    history: list[tuple[int, StoredMessage]] = field(default_factory=list)  # messageAdded
    # Indexes of ``messages``, so a mailbox of thousands answers each call at once.
    by_id: dict[str, StoredMessage] = field(default_factory=dict)
    by_thread: dict[str, list[StoredMessage]] = field(default_factory=dict)

    def record_added(self, message: StoredMessage) -> None:
        self.history_id += HISTORY_GAP
        message.history_id = self.history_id
        self.history.append((self.history_id, message))

    def add(self, message: StoredMessage) -> None:
        """A message (not a draft) now in the mailbox, with its ``messageAdded`` record."""
        self.messages.append(message)
        self.by_id[message.id] = message
        self.by_thread.setdefault(message.thread_id, []).append(message)
        self.record_added(message)

    def thread(self, thread_id: str) -> list[StoredMessage]:
        drafts = [m for m in self.drafts.values() if m.thread_id == thread_id]
        return sorted(self.by_thread.get(thread_id, []) + drafts, key=lambda m: m.history_id)


@dataclass
class Failure:
    status: int
    reason: str
    apply: bool
    retry_after: float | None


class FakeGmail:
    def __init__(self, google: FakeGoogle) -> None:
        self.google = google
        self.document = discovery_document()
        self.global_parameters = self.document["parameters"]
        self.schemas = self.document["schemas"]
        methods = {m["id"]: m for m in _methods(self.document["resources"]["users"])}
        self.methods = {method_id: methods[method_id] for method_id in IMPLEMENTED}
        self.app = Starlette(routes=[self._route(m) for m in self.methods.values()])
        self.server = FakeServer(self.app)
        self.reset()

    def reset(self) -> None:
        self.mailboxes: dict[str, Mailbox] = {}
        self.calls: list[tuple[str, dict[str, list[str]]]] = []
        self.bodies: list[tuple[str, Any]] = []  # (method id, JSON body) of each valid call
        self.failures: dict[str, list[Failure]] = {}
        self.refusals: dict[tuple[str, str], tuple[int, str]] = {}  # (method, to) -> answer
        self.delays: dict[str, float] = {}
        self.rewrite_message_id = False  # True: Gmail-style new Message-ID on send
        self._ids = itertools.count(0x18C0000000000000)

    # -- the server -------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self.server.url

    def __enter__(self) -> Self:
        self.server.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.server.stop()

    # -- test controls ------------------------------------------------------------------

    def fail(
        self,
        method_id: str,
        *,
        status: int,
        reason: str | None = None,
        times: int = 1,
        apply: bool = False,
        retry_after: float | None = None,
    ) -> None:
        """The next ``times`` calls of ``method_id`` fail; ``apply``: do the work first."""
        default_reason = {429: "rateLimitExceeded", 401: "authError"}.get(status, "backendError")
        failure = Failure(status, reason or default_reason, apply, retry_after)
        self.failures.setdefault(method_id, []).extend([failure] * times)

    def refuse(
        self, method_id: str, *, to: str, status: int = 400, message: str = "Invalid To header"
    ) -> None:
        """Every call of ``method_id`` whose message is addressed to ``to`` is refused
        with ``status`` (a permanent refusal: it never goes away by itself)."""
        self.refusals[(method_id, to.lower())] = (status, message)

    def delay(self, method_id: str, seconds: float) -> None:
        self.delays[method_id] = seconds

    def mailbox(self, email: str) -> Mailbox:
        return self.mailboxes.setdefault(email, Mailbox())

    def sent(self, email: str) -> list[StoredMessage]:
        return [m for m in self.mailbox(email).messages if "SENT" in m.labels]

    def called(self, method_id: str) -> int:
        return sum(1 for name, _ in self.calls if name == method_id)

    def _new_id(self) -> str:
        return format(next(self._ids), "x")

    # -- what arrives from outside ------------------------------------------------------

    def deliver(self, email: str, raw: bytes, *, thread_id: str | None = None) -> StoredMessage:
        """An incoming message, filed in INBOX (in ``thread_id`` when given)."""
        message = StoredMessage(
            id=self._new_id(),
            thread_id=thread_id or self._new_id(),
            raw=raw,
            labels=["INBOX", "UNREAD"],
        )
        self.mailbox(email).add(message)
        return message

    def deliver_reply(
        self,
        email: str,
        original: StoredMessage,
        *,
        from_addr: str | None = None,
        text: str = "Thanks for writing; let's talk on Tuesday.",
        headers: dict[str, str] | None = None,
    ) -> StoredMessage:
        """A person's reply to ``original`` (by default from its recipient), in its thread."""
        parsed = original.parsed
        reply = EmailMessage(policy=policy.SMTP)
        reply["From"] = from_addr or str(parsed["To"])
        reply["To"] = str(parsed["From"])
        reply["Subject"] = "Re: " + _RE_PREFIX.sub("", str(parsed["Subject"]))
        reply["Message-ID"] = f"<{self._new_id()}@reply.example>"
        reply["In-Reply-To"] = str(parsed["Message-ID"])
        reply["References"] = " ".join(
            filter(None, [str(parsed.get("References", "")), str(parsed["Message-ID"])])
        )
        for name, value in (headers or {}).items():
            if name in reply:
                del reply[name]
            reply[name] = value
        reply.set_content(text)
        return self.deliver(email, reply.as_bytes(), thread_id=original.thread_id)

    def deliver_auto_reply(
        self, email: str, original: StoredMessage, *, subject: str | None = None
    ) -> StoredMessage:
        """An out-of-office answer to ``original`` (RFC 3834 ``Auto-Submitted``)."""
        topic = _RE_PREFIX.sub("", str(original.parsed["Subject"]))
        return self.deliver_reply(
            email,
            original,
            text="I am out of the office until Monday with limited access to email.",
            headers={
                "Subject": subject or f"Automatic reply: {topic}",
                "Auto-Submitted": "auto-replied",
                "X-Autoreply": "yes",
            },
        )

    def deliver_bounce(
        self, email: str, original: StoredMessage, *, status: str = "5.1.1"
    ) -> StoredMessage:
        """Gmail's delivery-status notification (RFC 3464) for ``original``, in its thread."""
        return self.deliver(email, dsn_for(original, status=status), thread_id=original.thread_id)

    def expire_history(self, email: str) -> None:
        """History ids before now are too old: ``history.list`` answers 404 for them."""
        box = self.mailbox(email)
        box.history_id += HISTORY_GAP
        box.oldest_history_id = box.history_id

    # -- validation ---------------------------------------------------------------------

    def _route(self, method: dict[str, Any]) -> Route:
        pattern = re.sub(r"\{(\w+)\}", r"{\1}", "/" + method["path"])

        async def endpoint(request: Request) -> Response:
            return await self._handle(method, request)

        return Route(pattern, endpoint, methods=[method["httpMethod"]])

    def _check_auth(self, method: dict[str, Any], request: Request) -> tuple[str, set[str]]:
        header = request.headers.get("authorization", "")
        grant = self.google.oauth.access_token_info(header.removeprefix("Bearer ").strip())
        if not header.startswith("Bearer ") or grant is None:
            raise GmailRequestError(
                401,
                "Request had invalid authentication credentials.",
                "authError",
                "UNAUTHENTICATED",
            )
        scopes = set(grant.scopes)
        if not scopes & set(method["scopes"]):
            raise GmailRequestError(
                403,
                "Request had insufficient authentication scopes.",
                "insufficientPermissions",
                "PERMISSION_DENIED",
            )
        return grant.email, scopes

    def _check_query(self, method: dict[str, Any], request: Request, scopes: set[str]) -> None:
        declared = method.get("parameters", {})
        for name in set(request.query_params.keys()):
            spec = declared.get(name) or self.global_parameters.get(name)
            if spec is None or spec.get("location") != "query":
                raise _bad(
                    "Invalid JSON payload received. "
                    f'Unknown name "{name}": Cannot bind query parameter.'
                )
            values = request.query_params.getlist(name)
            if len(values) > 1 and not spec.get("repeated"):
                raise _bad(f"Parameter {name} is not repeated")
            for value in values:
                _check_value(name, value, spec)
        if METADATA_SCOPE in scopes:
            if "q" in request.query_params:
                raise GmailRequestError(
                    403,
                    "Metadata scope does not support 'q' parameter",
                    "forbidden",
                    "PERMISSION_DENIED",
                )
            if "format" in declared:
                fmt = request.query_params.get("format", declared["format"].get("default", ""))
                if fmt.lower() in {"full", "raw"}:
                    raise GmailRequestError(
                        403,
                        f"Metadata scope doesn't allow format {fmt.upper()}",
                        "forbidden",
                        "PERMISSION_DENIED",
                    )

    def _check_path(self, request: Request, email: str) -> None:
        user_id = request.path_params.get("userId")
        if user_id not in {"me", email}:
            raise GmailRequestError(403, "Delegation denied", "forbidden", "PERMISSION_DENIED")

    async def _check_body(self, method: dict[str, Any], request: Request) -> Any:
        raw = await request.body()
        if "request" not in method:
            if raw:
                raise _bad(f"{method['id']} takes no request body")
            return None
        try:
            body = json.loads(raw or b"null")
        except ValueError as exc:
            raise _bad("Invalid JSON payload received.") from exc
        _check_schema(body, method["request"]["$ref"], self.schemas, method["id"], "")
        return body

    # -- dispatch -----------------------------------------------------------------------

    async def _handle(self, method: dict[str, Any], request: Request) -> Response:
        method_id = method["id"]
        try:
            email, scopes = self._check_auth(method, request)
            self._check_path(request, email)
            self._check_query(method, request, scopes)
            body = await self._check_body(method, request)
        except GmailRequestError as error:
            return error.response()
        self.calls.append(
            (method_id, {k: request.query_params.getlist(k) for k in request.query_params})
        )
        self.bodies.append((method_id, body))
        if method_id in self.delays:
            await asyncio.sleep(self.delays[method_id])
        refusal = self._refusal(method_id, email, body)
        if refusal is not None:
            return _error_response(*refusal, "invalidArgument", "INVALID_ARGUMENT")
        failures = self.failures.get(method_id)
        failure = failures.pop(0) if failures else None
        if failure is not None and not failure.apply:
            return self._failure_response(failure)
        try:
            result = self._perform(method_id, email, request, body)
        except GmailRequestError as error:
            return error.response()
        if failure is not None:
            return self._failure_response(failure)
        if result is None:
            return Response(status_code=204)
        return JSONResponse(result)

    def _refusal(self, method_id: str, email: str, body: Any) -> tuple[int, str] | None:
        if not any(method == method_id for method, _ in self.refusals):
            return None
        payload = body or {}
        if method_id == "gmail.users.drafts.send":
            draft = self.mailbox(email).drafts.get(str(payload.get("id")))
            raw = draft.raw if draft is not None else b""
        else:
            text = (payload.get("message") or payload).get("raw") or ""
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        to = BytesParser(policy=policy.default).parsebytes(raw)["To"]
        addresses = {a.addr_spec.lower() for a in to.addresses} if to is not None else set()
        for address in addresses:
            if (method_id, address) in self.refusals:
                return self.refusals[(method_id, address)]
        return None

    @staticmethod
    def _failure_response(failure: Failure) -> JSONResponse:
        headers = {} if failure.retry_after is None else {"Retry-After": str(failure.retry_after)}
        api_status = {
            401: "UNAUTHENTICATED",
            403: "PERMISSION_DENIED",
            429: "RESOURCE_EXHAUSTED",
        }.get(failure.status, "INTERNAL")
        return _error_response(failure.status, "Fake failure", failure.reason, api_status, headers)

    def _perform(self, method_id: str, email: str, request: Request, body: Any) -> Any:
        box = self.mailbox(email)
        query = request.query_params
        handlers: dict[str, Callable[[], Any]] = {
            "gmail.users.getProfile": lambda: {
                "emailAddress": email,
                "messagesTotal": len(box.messages),
                "threadsTotal": len(box.by_thread),
                "historyId": str(box.history_id),
            },
            "gmail.users.drafts.create": lambda: self._create_draft(box, body),
            "gmail.users.drafts.get": lambda: self._get_draft(box, request),
            "gmail.users.drafts.delete": lambda: self._delete_draft(box, request),
            "gmail.users.drafts.send": lambda: self._send_draft(box, body),
            "gmail.users.messages.send": lambda: self._send(box, body),
            "gmail.users.messages.list": lambda: self._list(box, query),
            "gmail.users.messages.get": lambda: self._get_message(box, request),
            "gmail.users.history.list": lambda: self._list_history(box, query),
            "gmail.users.threads.get": lambda: self._get_thread(box, request),
        }
        return handlers[method_id]()

    def _message_from(
        self, box: Mailbox, payload: dict[str, Any], labels: list[str]
    ) -> StoredMessage:
        raw_text = payload.get("raw")
        if not raw_text:
            raise _bad(
                "'raw' RFC822 payload message string or uploading message via /upload/* URL "
                "required"
            )
        try:
            raw = base64.urlsafe_b64decode(raw_text + "=" * (-len(raw_text) % 4))
        except (binascii.Error, ValueError) as exc:
            raise _bad("Invalid value for ByteString") from exc
        message = BytesParser(policy=policy.default).parsebytes(raw)
        if not message["To"]:
            raise _bad("Recipient address required")
        thread_id = payload.get("threadId")
        if not thread_id or not _joins_thread(box.thread(thread_id), message):
            thread_id = self._new_id()
        return StoredMessage(id=self._new_id(), thread_id=thread_id, raw=raw, labels=labels)

    def _create_draft(self, box: Mailbox, body: dict[str, Any]) -> dict[str, Any]:
        message = self._message_from(box, body.get("message") or {}, ["DRAFT"])
        draft_id = "r" + self._new_id()
        box.drafts[draft_id] = message
        box.record_added(message)
        return {"id": draft_id, "message": message.resource()}

    def _draft(self, box: Mailbox, draft_id: str) -> StoredMessage:
        if draft_id not in box.drafts:
            raise GmailRequestError(404, "Requested entity was not found.", "notFound", "NOT_FOUND")
        return box.drafts[draft_id]

    def _get_draft(self, box: Mailbox, request: Request) -> dict[str, Any]:
        draft_id = request.path_params["id"]
        message = self._draft(box, draft_id)
        return {
            "id": draft_id,
            "message": message.resource(request.query_params.get("format", "full")),
        }

    def _delete_draft(self, box: Mailbox, request: Request) -> None:
        self._draft(box, request.path_params["id"])
        del box.drafts[request.path_params["id"]]

    def _deliver(self, box: Mailbox, message: StoredMessage) -> dict[str, Any]:
        if self.rewrite_message_id:
            parsed = message.parsed
            original = parsed["Message-ID"]
            del parsed["Message-ID"]
            parsed["Message-ID"] = f"<{self._new_id()}@mail.gmail.com>"
            parsed["X-Google-Original-Message-ID"] = original
            message.raw = parsed.as_bytes(policy=policy.SMTP)
        message.labels = ["SENT"]
        box.add(message)
        return message.resource()

    def _send_draft(self, box: Mailbox, body: dict[str, Any]) -> dict[str, Any]:
        draft_id = body.get("id")
        if not draft_id:
            raise _bad("Draft id required")
        message = self._draft(box, draft_id)
        del box.drafts[draft_id]
        sent = StoredMessage(
            id=self._new_id(), thread_id=message.thread_id, raw=message.raw, labels=[]
        )
        return self._deliver(box, sent)

    def _send(self, box: Mailbox, body: dict[str, Any]) -> dict[str, Any]:
        return self._deliver(box, self._message_from(box, body, []))

    def _list(self, box: Mailbox, query: Any) -> dict[str, Any]:
        labels = query.getlist("labelIds")
        found = [m for m in reversed(box.messages) if all(label in m.labels for label in labels)]
        start = int(query.get("pageToken", "0"))
        size = int(query.get("maxResults", "100"))
        page = found[start : start + size]
        body: dict[str, Any] = {
            "messages": [{"id": m.id, "threadId": m.thread_id} for m in page],
            "resultSizeEstimate": len(found),
        }
        if start + size < len(found):
            body["nextPageToken"] = str(start + size)
        return body

    def _get_message(self, box: Mailbox, request: Request) -> dict[str, Any]:
        message = box.by_id.get(request.path_params["id"])
        if message is None:
            raise GmailRequestError(404, "Requested entity was not found.", "notFound", "NOT_FOUND")
        return message.resource(
            request.query_params.get("format", "full"),
            request.query_params.getlist("metadataHeaders"),
        )

    def _list_history(self, box: Mailbox, query: Any) -> dict[str, Any]:
        start_text = query.get("startHistoryId")
        if not start_text:
            raise _bad("Missing required parameter startHistoryId")
        if not start_text.isdigit():
            raise _bad(f"Invalid value for startHistoryId: {start_text}")
        start = int(start_text)
        if start < box.oldest_history_id:
            raise GmailRequestError(404, "Requested entity was not found.", "notFound", "NOT_FOUND")
        types = query.getlist("historyTypes")
        label = query.get("labelId")
        records = [
            {
                "id": str(history_id),
                "messages": [{"id": m.id, "threadId": m.thread_id}],
                "messagesAdded": [
                    {"message": {"id": m.id, "threadId": m.thread_id, "labelIds": m.labels}}
                ],
            }
            # History ids only grow: the records after ``start`` are a tail of the list.
            for history_id, m in box.history[bisect.bisect_right(box.history, start, key=_id) :]
            if (not types or "messageAdded" in types) and (label is None or label in m.labels)
        ]
        offset = int(query.get("pageToken", "0"))
        size = min(int(query.get("maxResults", "100")), 500)
        body: dict[str, Any] = {"historyId": str(box.history_id)}
        if records[offset : offset + size]:  # Gmail leaves "history" out when empty
            body["history"] = records[offset : offset + size]
        if offset + size < len(records):
            body["nextPageToken"] = str(offset + size)
        return body

    def _get_thread(self, box: Mailbox, request: Request) -> dict[str, Any]:
        thread_id = request.path_params["id"]
        messages = box.thread(thread_id)
        if not messages:
            raise GmailRequestError(404, "Requested entity was not found.", "notFound", "NOT_FOUND")
        fmt = request.query_params.get("format", "full")
        headers = request.query_params.getlist("metadataHeaders")
        return {
            "id": thread_id,
            "historyId": str(max(m.history_id for m in messages)),
            "messages": [m.resource(fmt, headers) for m in messages],
        }


def _id(record: tuple[int, StoredMessage]) -> int:
    return record[0]


def _normal_subject(value: object) -> str:
    return _RE_PREFIX.sub("", str(value or "")).strip().lower()


def _joins_thread(thread: list[StoredMessage], message: EmailMessage) -> bool:
    """Gmail files a message with a ``threadId`` into that thread only when it answers a
    message of the thread (``In-Reply-To``/``References``) under the same subject."""
    if not thread:
        return False
    referenced = set(str(message.get("References", "")).split())
    referenced |= set(str(message.get("In-Reply-To", "")).split())
    ids = {str(m.parsed["Message-ID"]).strip() for m in thread}
    subjects = {_normal_subject(m.parsed["Subject"]) for m in thread}
    return bool(referenced & ids) and _normal_subject(message["Subject"]) in subjects


def dsn_for(original: StoredMessage, *, status: str = "5.1.1") -> bytes:
    """The bytes of a Gmail bounce for ``original``: ``multipart/report`` with a
    ``message/delivery-status`` part naming the recipient and the original headers."""
    parsed = original.parsed
    recipient = parsed["To"].addresses[0].addr_spec
    message_id = str(parsed["Message-ID"])
    boundary = "000000000000dsn" + original.id
    lines = [
        "From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>",
        f"To: {parsed['From']}",
        "Subject: Delivery Status Notification (Failure)",
        f"Message-ID: <{original.id}.dsn@mx.google.com>",
        f"In-Reply-To: {message_id}",
        f"References: {message_id}",
        f"X-Failed-Recipients: {recipient}",
        "Auto-Submitted: auto-replied",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; boundary="{boundary}"; report-type=delivery-status',
        "",
        f"--{boundary}",
        "Content-Type: text/plain; charset=UTF-8",
        "",
        f"Address not found: your message wasn't delivered to {recipient}.",
        "",
        f"--{boundary}",
        "Content-Type: message/delivery-status",
        "",
        "Reporting-MTA: dns; googlemail.com",
        "",
        f"Final-Recipient: rfc822; {recipient}",
        "Action: failed",
        f"Status: {status}",
        "Diagnostic-Code: smtp; 550 5.1.1 The email account that you tried to reach "
        "does not exist.",
        "",
        f"--{boundary}",
        "Content-Type: text/rfc822-headers",
        "",
        f"Message-ID: {message_id}",
        f"Subject: {parsed['Subject']}",
        f"To: {parsed['To']}",
        "",
        f"--{boundary}--",
        "",
    ]
    return "\r\n".join(lines).encode()


def _check_value(name: str, value: str, spec: dict[str, Any]) -> None:
    kind = spec.get("type")
    if kind == "boolean" and value not in {"true", "false"}:
        raise _bad(f"Invalid value for boolean parameter {name}: {value}")
    if kind == "integer" and not value.isdigit():
        raise _bad(f"Invalid value for integer parameter {name}: {value}")
    if "enum" in spec and value.lower() not in {e.lower() for e in spec["enum"]}:
        raise _bad(f"Invalid value for {name}: {value}")


def _check_schema(value: Any, ref: str, schemas: dict[str, Any], method_id: str, at: str) -> None:
    schema = schemas[ref]
    if not isinstance(value, dict):
        raise _bad(f"Invalid JSON payload received. Expected an object for {ref} at {at or 'body'}")
    properties = schema.get("properties", {})
    for name, item in value.items():
        if name not in properties:
            raise _bad(f"Invalid JSON payload received. Unknown name \"{name}\" at '{at}'")
        spec = properties[name]
        if "$ref" in spec:
            _check_schema(item, spec["$ref"], schemas, method_id, f"{at}.{name}".lstrip("."))
        elif spec.get("type") == "string" and not isinstance(item, str):
            raise _bad(f"Invalid value at '{at}.{name}': expected a string")
        elif spec.get("type") == "array" and not isinstance(item, list):
            raise _bad(f"Invalid value at '{at}.{name}': expected a list")
    for name, spec in properties.items():
        required = spec.get("annotations", {}).get("required", [])
        if method_id in required and name not in value:
            raise _bad(f"Missing required field {name}")


@pytest.fixture(scope="session")
def fake_gmail_server(fake_google_server: FakeGoogle) -> Iterator[FakeGmail]:
    with FakeGmail(fake_google_server) as gmail:
        yield gmail


@pytest.fixture
def fake_gmail(fake_gmail_server: FakeGmail, fake_google: FakeGoogle) -> FakeGmail:
    """The session's fake Gmail, emptied, with no failures (and the fake Google reset)."""
    fake_gmail_server.reset()
    return fake_gmail_server
