"""Building outgoing messages: the one place that writes message headers, for every provider.

Python's ``email`` policies fold a header after encoding it, which RFC 2047-encodes
``List-Unsubscribe`` (no mail program then finds the link), folds a display name
unquoted (a comma in it becomes a second recipient) and joins encoded words across a
space. So the headers are written here, field by field: structured fields (addresses,
Message-ID, In-Reply-To, References, List-Unsubscribe) are never encoded; a display name
is quoted, or encoded as one phrase, before any folding; a subject is written as it is
when it is plain ASCII, else as encoded words that split between characters only and
carry every space inside them. A line is folded only at whitespace that is part of the
value (or between encoded words), so unfolding gives the value back exactly. No control
character (``kit.text.control_character``) is ever written: such a value is refused,
naming the field. The body (alternatives, attachments) is still built by ``EmailMessage``.

A message is serialised once: providers (and the stored MIME of send-only and SMTP
campaigns) take the bytes, never an ``EmailMessage`` to serialise again, and the whole
message is checked against Gmail's 25 MB limit before any call is made.
"""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.utils import format_datetime
from functools import lru_cache

from outreach.kit.clock import utcnow
from outreach.kit.errors import FieldError, Unprocessable
from outreach.kit.text import control_character

GMAIL_MAX_MESSAGE_BYTES = 25 * 1024 * 1024
_DATE_HEADER = re.compile(rb"(?m)^Date: [^\r\n]*")
LINE_LIMIT = 998  # RFC 5322 2.1.1: MUST, without the CRLF
FOLD_AT = 78  # RFC 5322 2.1.1: SHOULD
_WORD_LIMIT = 75  # RFC 2047 2: an encoded word is at most 75 characters
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM = re.compile(rf"{_ATOM}(?:\.{_ATOM})*")
_MSG_ID = re.compile(r"<[\x21-\x3b\x3d\x3f-\x7e]+@[\x21-\x3b\x3d\x3f-\x7e]+>")
_URL = re.compile(r"[\x21-\x3b\x3d\x3f-\x7e]+")  # printable ASCII, no space, no < or >
_FIELD_NAME = re.compile(r"[\x21-\x39\x3b-\x7e]+")
_Q_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")
_WRITTEN_HERE = frozenset(
    {"from", "to", "cc", "bcc", "subject", "date", "message-id", "in-reply-to", "references"}
    | {"list-unsubscribe", "list-unsubscribe-post", "mime-version", "content-type"}
    | {"content-transfer-encoding"}
)


class InvalidHeader(Unprocessable):
    code, title = "invalid_header", "A header value cannot be written in a message"


class HeaderInjection(InvalidHeader):
    code, title = "header_injection", "A header value contains a line break"


class InvalidBody(Unprocessable):
    code, title = "invalid_body", "The message text cannot be encoded"


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
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
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
        date = _date_field(moment.replace(microsecond=0))
        return replace(self, data=_DATE_HEADER.sub(date, head, count=1) + separator + body)

    def headers(self) -> dict[str, str]:
        """The header fields, decoded (RFC 2047) for display."""
        parsed = BytesHeaderParser(policy=policy.default).parsebytes(self.data)
        return {name: str(value) for name, value in parsed.items()}


@lru_cache(maxsize=4)
def _date_field(moment: datetime) -> bytes:
    # A Date field has whole seconds: a busy tick dates many sends within one second.
    return b"Date: " + format_datetime(moment).encode("ascii")


def check_header_text(field_name: str, value: str) -> str:
    """``value`` unchanged, or :class:`InvalidHeader` naming ``field_name`` when it holds a
    character no header may carry (CR and LF: :class:`HeaderInjection`)."""
    found = control_character(value)
    if found is None:
        return value
    error = HeaderInjection if ("\r" in value or "\n" in value) else InvalidHeader
    raise error(
        f"the {field_name} contains {found}, which cannot be written in a header",
        errors=[FieldError(loc=[field_name], message=f"{found} cannot be written in a header")],
    )


def _refuse(field_name: str, message: str) -> InvalidHeader:
    return InvalidHeader(
        f"the {field_name} {message}", errors=[FieldError(loc=[field_name], message=message)]
    )


# -- encoded words (RFC 2047) ---------------------------------------------------------


def _q_cost(character: str) -> int:
    if character in _Q_SAFE or character == " ":
        return 1
    return 3 * len(character.encode("utf-8"))


def _q_payload(text: str) -> str:
    out = []
    for character in text:
        if character in _Q_SAFE:
            out.append(character)
        elif character == " ":
            out.append("_")
        else:
            out.extend(f"={byte:02X}" for byte in character.encode("utf-8"))
    return "".join(out)


def _encoded_words(text: str, first_room: int) -> list[str]:
    """``text`` as encoded words, each within its line's room, split only between
    characters; spaces travel inside the words (whitespace between words is ignored)."""
    q_size = sum(_q_cost(c) for c in text)
    b_size = 4 * -(-len(text.encode("utf-8")) // 3)
    q = q_size <= b_size
    overhead = len("=?utf-8?q??=")
    words: list[str] = []
    chunk, size, used_bytes = "", 0, 0
    room = first_room
    for character in text:
        if q:
            grown = size + _q_cost(character)
        else:
            grown = 4 * -(-(used_bytes + len(character.encode("utf-8"))) // 3)
        # A space followed by whitespace ends a word: some readers (Python 3.11's parser)
        # fold a run of whitespace inside one encoded word into a single space.
        if chunk and (grown + overhead > room or (chunk[-1] == " " and character.isspace())):
            words.append(_encoded_word(chunk, q))
            chunk, size, used_bytes, room = "", 0, 0, _WORD_LIMIT
            grown = _q_cost(character) if q else 4 * -(-len(character.encode("utf-8")) // 3)
        chunk += character
        size, used_bytes = grown, used_bytes + len(character.encode("utf-8"))
    words.append(_encoded_word(chunk, q))
    return words


def _encoded_word(text: str, q: bool) -> str:
    if q:
        return f"=?utf-8?q?{_q_payload(text)}?="
    return f"=?utf-8?b?{base64.b64encode(text.encode('utf-8')).decode('ascii')}?="


# -- fields -----------------------------------------------------------------------------

_Piece = tuple[str, str]  # (whitespace before the token, the token)


def _room(prefix: str) -> int:
    room = FOLD_AT - len(prefix)
    return room if room >= 24 else _WORD_LIMIT


def _fold(name: str, pieces: Iterable[_Piece]) -> str:
    """``Name: value`` with CRLF inserted before whitespace only, lines within 78
    characters where a break is possible and never over 998."""
    lines = [f"{name}:"]
    for space, token in pieces:
        if len(lines) == 1 and lines[0] == f"{name}:":
            lines[0] += space + token  # the first token stays on the field's line
        elif len(lines[-1]) + len(space) + len(token) <= FOLD_AT or not space:
            lines[-1] += space + token
        else:
            lines.append(space + token)
    if any(len(line) > LINE_LIMIT for line in lines):
        raise _refuse(name, f"is too long to write on lines of {LINE_LIMIT} characters")
    return "\r\n".join(lines) + "\r\n"


def _plain_word(word: str) -> bool:
    """Written as it is (or inside quotes): printable ASCII that does not read as an
    encoded word and fits a line."""
    return all(" " < c <= "~" for c in word) and "=?" not in word and len(word) < LINE_LIMIT - 100


def _runs(text: str) -> list[tuple[bool, str]]:
    """``text`` cut at single spaces into runs of words written as they are (False) or
    encoded (True). The cutting space is written between runs, where every reader keeps
    it; repeated and edge spaces stay inside a run."""
    runs: list[list[object]] = []
    for word in text.split(" "):
        kind = None if not word else not _plain_word(word)
        if runs and (kind is None or runs[-1][0] in (None, kind)):
            runs[-1][1] = f"{runs[-1][1]} {word}"
            runs[-1][0] = kind if runs[-1][0] is None else runs[-1][0]
        else:
            runs.append([kind, word])
    return [(bool(kind), str(run)) for kind, run in runs]


def _unstructured(name: str, value: str) -> str:
    """A subject (or any unstructured field): plain words as they are, the rest as
    encoded words; a value with edge spaces is encoded whole, so none is lost."""
    runs = [(True, value)] if value != value.strip(" ") else _runs(value)
    pieces: list[_Piece] = []
    for encode, run in runs:
        if encode:
            words = _encoded_words(run, _room(f"{name}: ") if not pieces else _WORD_LIMIT)
            pieces += [(" ", word) for word in words]
        else:
            parts = re.split(r"( +)", run)
            pieces.append((" ", parts[0]))
            pieces += [(parts[i], parts[i + 1]) for i in range(1, len(parts) - 1, 2)]
    return _fold(name, pieces)


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _phrase(prefix: str, display: str) -> list[_Piece]:
    """A display name as quoted strings and encoded words, never bare: a comma, quote or
    ``<`` inside it can never end the name, however the field is folded."""
    pieces: list[_Piece] = []
    for encode, run in _runs(display):
        if encode:
            words = _encoded_words(run, _room(prefix) if not pieces else _WORD_LIMIT)
            pieces += [(" ", word) for word in words]
            continue
        chunk: list[str] = []  # quoted strings of a line at most, cut at a single space
        for word in run.split(" "):
            if chunk and len(_quoted(" ".join([*chunk, word]))) > FOLD_AT - 2:
                pieces.append((" ", _quoted(" ".join(chunk))))
                chunk = []
            chunk.append(word)
        pieces.append((" ", _quoted(" ".join(chunk))))
    return pieces


@lru_cache(maxsize=4096)
def _ascii_domain(domain: str) -> str:
    """The domain in its ASCII (IDNA) form, "" when it has none. Cached: a campaign
    writes to the same few hundred companies 10,000 times."""
    try:
        return domain.encode("idna").decode("ascii") if domain else ""
    except UnicodeError:
        return ""


def _addr_spec(field_name: str, address: str) -> str:
    """``local@domain`` as written on the wire (an IDN domain in its ASCII form)."""
    check_header_text(field_name, address)
    local, at, domain = address.rpartition("@")
    ascii_domain = _ascii_domain(domain)
    if not at or not local or not _DOT_ATOM.fullmatch(ascii_domain):
        raise InvalidAddress(
            f"{address!r} is not an email address",
            errors=[FieldError(loc=[field_name], message="not an email address")],
        )
    if not _DOT_ATOM.fullmatch(local):
        if not all(" " <= c <= "~" for c in local):
            raise InvalidAddress(
                f"{address!r} has a non-ASCII local part, which needs SMTPUTF8",
                errors=[FieldError(loc=[field_name], message="non-ASCII before the @")],
            )
        local = '"' + local.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return f"{local}@{ascii_domain}"


def check_recipient_headers(*, to_address: str, to_name: str | None, subject: str) -> None:
    """What :func:`build_message` refuses in a recipient's headers, checked without building
    the message (at preview and schedule, before anything is charged): raises
    :class:`InvalidHeader` or :class:`InvalidAddress` naming the field."""
    _addr_spec("to_address", to_address)
    if to_name:
        check_header_text("to_name", to_name)
    check_header_text("subject", subject)


def _mailbox_field(name: str, display_field: str, display: str | None, spec: str) -> str:
    pieces: list[_Piece] = []
    if display:
        pieces = _phrase(f"{name}: ", check_header_text(display_field, display))
    pieces.append((" ", f"<{spec}>"))
    return _fold(name, pieces)


def _message_ids(field_name: str, name: str, ids: Iterable[str]) -> str:
    checked = []
    for value in ids:
        check_header_text(field_name, value)
        if not _MSG_ID.fullmatch(value):
            raise _refuse(field_name, f"holds {value[:80]!r}, which is not a <id@domain>")
        checked.append(value)
    return _fold(name, [(" ", value) for value in checked])


def _list_unsubscribe(links: Iterable[str]) -> str:
    tokens = []
    for link in links:
        check_header_text("list_unsubscribe", link)
        if not _URL.fullmatch(link):
            raise _refuse("list_unsubscribe", f"link {link[:80]!r} is not a printable ASCII URL")
        tokens.append(f"<{link}>")
    pieces = [(" ", token + ("," if i < len(tokens) - 1 else "")) for i, token in enumerate(tokens)]
    return _fold("List-Unsubscribe", pieces)


def _extra_headers(email: OutgoingEmail) -> Iterator[str]:
    """Other fields a caller adds: In-Reply-To and References (when not given as fields)
    written as message ids, anything else as unstructured text; never one of ours."""
    given = {"in-reply-to": email.in_reply_to is not None, "references": bool(email.references)}
    for name, value in email.extra_headers.items():
        key = name.lower()
        if not _FIELD_NAME.fullmatch(name) or given.get(key, key in _WRITTEN_HERE):
            raise _refuse("header name", f"{name[:80]!r} cannot be added")
        if key in given:
            yield _message_ids(name, name, value.split())
        else:
            yield _unstructured(name, check_header_text(name, value))


def make_message_id(domain: str) -> str:
    # 128 random bits, as uuid4().hex spelled them, without building a UUID.
    return f"<{os.urandom(16).hex()}@{domain}>"


def make_message_ids(domain: str, count: int) -> list[str]:
    """``count`` Message-IDs as :func:`make_message_id` writes them, from one read of
    the OS's random source (a schedule writes 10,000; a read each is a system call each)."""
    random = os.urandom(16 * count).hex()
    return [f"<{random[start : start + 32]}@{domain}>" for start in range(0, 32 * count, 32)]


def _header_block(email: OutgoingEmail, sender: str, recipient: str, date: datetime) -> str:
    """Every header of the message, in order, each written (and folded) here."""
    fields = [
        _mailbox_field("From", "from_name", email.from_name, sender),
        _mailbox_field("To", "to_name", email.to_name, recipient),
        _unstructured("Subject", check_header_text("subject", email.subject)),
        f"Date: {format_datetime(date)}\r\n",
        _message_ids("message_id", "Message-ID", [email.message_id or ""]),
    ]
    if email.in_reply_to is not None:
        fields.append(_message_ids("in_reply_to", "In-Reply-To", [email.in_reply_to]))
    if email.references:
        fields.append(_message_ids("references", "References", email.references))
    if email.list_unsubscribe:
        fields.append(_list_unsubscribe(email.list_unsubscribe))
        if email.one_click_unsubscribe:
            fields.append("List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n")
    fields += _extra_headers(email)
    return "".join(fields)


def _body(email: OutgoingEmail) -> bytes:
    """The MIME body (text, HTML, attachments) with its own MIME headers."""
    message = EmailMessage(policy=policy.SMTP)
    message.set_content(email.text)
    if email.html is not None:
        message.add_alternative(email.html, subtype="html")
    for attachment in email.attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        message.add_attachment(
            attachment.content,
            maintype=maintype or "application",
            subtype=subtype or "octet-stream",
            filename=check_header_text("filename", attachment.filename),
        )
    return message.as_bytes(policy=policy.SMTP)


def build_message(email: OutgoingEmail, *, date: datetime | None = None) -> EncodedMessage:
    """The message: our headers, text (and HTML) alternatives, attachments, encoded.

    Raises :class:`InvalidHeader` (naming the field) or :class:`InvalidAddress` for a
    value no header can carry, :class:`MessageTooLarge` over Gmail's limit."""
    sender = _addr_spec("from_address", email.from_address)
    recipient = _addr_spec("to_address", email.to_address)
    if email.message_id is None:
        email = replace(email, message_id=make_message_id(sender.rpartition("@")[2]))
    head = _header_block(email, sender, recipient, date or utcnow())
    try:
        body = _body(email)
    except UnicodeError as exc:  # a lone surrogate: no encoding can carry it
        raise InvalidBody(
            "the text cannot be encoded",
            errors=[FieldError(loc=["text"], message="holds a character UTF-8 cannot encode")],
        ) from exc
    data = head.encode("ascii") + body
    check_size(data)
    assert email.message_id is not None
    return EncodedMessage(
        data=data, message_id=email.message_id, sender=sender, recipients=(recipient,)
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
