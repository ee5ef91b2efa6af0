"""Building outgoing messages: one encoded message (policy SMTP) for every provider.

Header values never contain CR or LF (header injection), non-ASCII subjects and
names are RFC 2047 encoded by the policy, and the whole message is checked
against Gmail's 25 MB limit before any call is made. A message is serialised
once: providers (and the stored MIME of send-only and SMTP campaigns) take the
bytes, never an ``EmailMessage`` to serialise again.
"""

from __future__ import annotations

import base64
import re
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.utils import format_datetime

from outreach.kit.clock import utcnow
from outreach.kit.errors import FieldError, Unprocessable

GMAIL_MAX_MESSAGE_BYTES = 25 * 1024 * 1024
_DATE_HEADER = re.compile(rb"(?m)^Date: [^\r\n]*")


class HeaderInjection(Unprocessable):
    code, title = "header_injection", "A header value contains a line break"


class MessageTooLarge(Unprocessable):
    code, title = "message_too_large", "The message is larger than Gmail accepts"


class InvalidAddress(Unprocessable):
    code, title = "invalid_address", "An email address is not valid"


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes
    content_type: str  # e.g. application/pdf


@dataclass(frozen=True)
class OutgoingEmail:
    """What a campaign (or a test) wants sent; :func:`build_message` makes the MIME."""

    from_address: str
    to_address: str
    subject: str
    text: str
    html: str | None = None
    from_name: str | None = None
    to_name: str | None = None
    attachments: tuple[Attachment, ...] = ()
    list_unsubscribe: tuple[str, ...] = ()  # URLs (https://…, mailto:…), in order
    one_click_unsubscribe: bool = False  # adds List-Unsubscribe-Post (RFC 8058)
    message_id: str | None = None  # "<…@…>"; generated when absent
    in_reply_to: str | None = None  # a follow-up: the Message-ID it answers
    references: tuple[str, ...] = ()  # the thread's Message-IDs, oldest first
    extra_headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class EncodedMessage:
    """A message exactly as it goes out (RFC 5322 bytes, CRLF), with its envelope."""

    data: bytes
    message_id: str
    sender: str
    recipients: tuple[str, ...]

    @property
    def gmail_raw(self) -> str:
        """The base64url ``raw`` field the Gmail API takes."""
        return base64.urlsafe_b64encode(self.data).decode("ascii")

    def dated(self, moment: datetime) -> EncodedMessage:
        """The same message dated ``moment``: one encoded ahead of time (a stored
        message, a draft) says when it was sent, not when it was prepared."""
        head, separator, body = self.data.partition(b"\r\n\r\n")
        date = b"Date: " + format_datetime(moment).encode("ascii")
        return replace(self, data=_DATE_HEADER.sub(date, head, count=1) + separator + body)

    def headers(self) -> dict[str, str]:
        """The header fields, decoded (RFC 2047) for display."""
        parsed = BytesHeaderParser(policy=policy.default).parsebytes(self.data)
        return {name: str(value) for name, value in parsed.items()}


def _check_header(name: str, value: str) -> str:
    if "\r" in value or "\n" in value:
        raise HeaderInjection(
            f"the {name} header must not contain a line break",
            errors=[FieldError(loc=[name], message="CR or LF in a header value")],
        )
    return value


def _address(name: str, display: str | None, address: str) -> Address:
    _check_header(name, address)
    if display is not None:
        _check_header(name, display)
    username, at, domain = address.rpartition("@")
    if not at or not username or not domain:
        raise InvalidAddress(
            f"{address!r} is not an email address",
            errors=[FieldError(loc=[name], message="not an email address")],
        )
    return Address(display_name=display or "", username=username, domain=domain)


_MSG_ID = re.compile(r"<[\x21-\x3b\x3d\x3f-\x7e]+@[\x21-\x3b\x3d\x3f-\x7e]+>")


def _message_id(field_name: str, value: str) -> str:
    if not _MSG_ID.fullmatch(_check_header(field_name, value)):
        raise HeaderInjection(
            f"the {field_name} holds {value[:80]!r}, which is not a <id@domain>",
            errors=[FieldError(loc=[field_name], message="not a <id@domain>")],
        )
    return value


def make_message_id(domain: str) -> str:
    return f"<{uuid.uuid4().hex}@{domain}>"


def build_message(email: OutgoingEmail, *, date: datetime | None = None) -> EncodedMessage:
    """The message: text (and HTML) alternatives, attachments, our Message-ID, encoded."""
    message = EmailMessage(policy=policy.SMTP)
    sender = _address("From", email.from_name, email.from_address)
    message["From"] = sender
    message["To"] = _address("To", email.to_name, email.to_address)
    message["Subject"] = _check_header("Subject", email.subject)
    message["Date"] = format_datetime(date or utcnow())
    message_id = _check_header("Message-ID", email.message_id or make_message_id(sender.domain))
    message["Message-ID"] = message_id
    # Structured fields of printable ASCII ids (checked), never encoded; a long
    # References is folded between ids only.
    if email.in_reply_to is not None:
        message["In-Reply-To"] = _message_id("in_reply_to", email.in_reply_to)
    if email.references:
        message["References"] = " ".join(_message_id("references", i) for i in email.references)
    if email.list_unsubscribe:
        links = ", ".join(
            f"<{_check_header('List-Unsubscribe', u)}>" for u in email.list_unsubscribe
        )
        message["List-Unsubscribe"] = links
        if email.one_click_unsubscribe:
            message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    for name, value in email.extra_headers.items():
        message[_check_header("header name", name)] = _check_header(name, value)
    message.set_content(email.text)
    if email.html is not None:
        message.add_alternative(email.html, subtype="html")
    for attachment in email.attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        message.add_attachment(
            attachment.content,
            maintype=maintype or "application",
            subtype=subtype or "octet-stream",
            filename=_check_header("filename", attachment.filename),
        )
    data = message.as_bytes(policy=policy.SMTP)
    check_size(data)
    return EncodedMessage(
        data=data, message_id=message_id, sender=email.from_address, recipients=(email.to_address,)
    )


def check_size(data: bytes) -> int:
    """The encoded size; over Gmail's limit raises before anything is sent."""
    size = len(data)
    if size > GMAIL_MAX_MESSAGE_BYTES:
        raise MessageTooLarge(
            f"the message is {size} bytes encoded; Gmail accepts at most "
            f"{GMAIL_MAX_MESSAGE_BYTES} (attachments grow by a third when encoded)",
            size=size,
            limit=GMAIL_MAX_MESSAGE_BYTES,
        )
    return size
