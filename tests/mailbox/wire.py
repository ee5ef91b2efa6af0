"""Checks on a message exactly as it left the process: the raw bytes first, then a strict
parse (``policy.strict`` plus the header registry) for what a mail program would read."""

from __future__ import annotations

import re
from email import policy
from email.header import decode_header
from email.message import EmailMessage
from email.parser import BytesParser

# C0 (NUL, TAB, VT, FF), DEL, C1 (CSI, NEL), the Unicode separators, a lone surrogate
CONTROL_CHARACTERS = (
    "\x00",
    "\t",
    "\x0b",
    "\x0c",
    "\x7f",
    "\x85",
    "\x9b",
    "\u2028",
    "\u2029",
    "\ud800",
)
UNSUBSCRIBE_VALUE = re.compile(r"^<https://[^>]+>(, <mailto:[^>]+>)?$")


def raw_header_block(raw: bytes) -> bytes:
    head, separator, _ = raw.partition(b"\r\n\r\n")
    assert separator, "no empty line (CRLF CRLF) ends the header"
    return head + b"\r\n"


def raw_header_values(raw: bytes, name: str) -> list[str]:
    """Every value of header ``name`` as written, unfolded (only CRLF + WSP removed),
    never decoded."""
    block = raw_header_block(raw).decode("ascii")
    unfolded = re.sub(r"\r\n(?=[ \t])", "", block)
    prefix = f"{name.lower()}:"
    return [
        line[len(prefix) :].lstrip(" ")
        for line in unfolded.split("\r\n")
        if line.lower().startswith(prefix)
    ]


_PHRASE_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=')
_ADJACENT_WORDS = re.compile(r"\?= =\?")


def display_name_on_wire(raw: bytes, name: str) -> str:
    """The display name of the one address in field ``name``, read as RFC 2047 6.2 says:
    the space between two adjacent encoded words is not part of the name. Python 3.11's
    address parser keeps it (CPython gh-128110, fixed in later versions), so a long
    non-ASCII name, which needs several encoded words, is read here instead."""
    (value,) = raw_header_values(raw, name)
    phrase = value.rpartition(" <")[0]
    text, previous = "", ""
    for token in _PHRASE_TOKEN.findall(phrase):
        encoded = token.startswith("=?")
        if previous and not (encoded and previous.startswith("=?")):
            text += " "
        if encoded:
            ((payload, charset),) = decode_header(token)
            text += payload.decode(charset) if isinstance(payload, bytes) else payload
        else:
            text += re.sub(r"\\(.)", r"\1", token[1:-1])
        previous = token
    assert " ".join(_PHRASE_TOKEN.findall(phrase)) == phrase, phrase  # nothing bare
    return text


def check_raw_lines(raw: bytes) -> None:
    """Every line ends CRLF, none exceeds 998 octets, the header is ASCII."""
    assert raw.endswith(b"\r\n")
    bare = raw.replace(b"\r\n", b"")
    assert b"\r" not in bare
    assert b"\n" not in bare
    for line in raw.split(b"\r\n"):
        assert len(line) <= 998, line[:100]
    head = raw_header_block(raw)
    assert head.isascii(), head
    for line in head.split(b"\r\n")[:-1]:
        # a field (name ":") or a continuation (starting with WSP), nothing else
        assert re.match(rb"^([\x21-\x39\x3b-\x7e]+:|[ \t])", line), line


def _check_display_name(raw: bytes, name: str, parsed: str, expected: str | None) -> None:
    (value,) = raw_header_values(raw, name)
    if not expected:
        assert parsed == ""
        assert value.startswith("<"), value
    elif _ADJACENT_WORDS.search(value):
        assert display_name_on_wire(raw, name) == expected
    else:
        assert parsed == expected
        assert display_name_on_wire(raw, name) == expected


def strict_parse(raw: bytes) -> EmailMessage:
    message = BytesParser(policy=policy.strict).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    assert not message.defects, message.defects
    for name in message:
        header = message[name]
        assert not header.defects, (name, header.defects, str(header))
    return message


def check_on_wire(
    raw: bytes,
    *,
    to_address: str,
    to_name: str | None,
    subject: str,
    from_address: str | None = None,
    from_name: str | None = None,
    unsubscribe: bool = True,
) -> EmailMessage:
    """The whole contract of a sent message, read from its bytes; returns the parse."""
    check_raw_lines(raw)
    message = strict_parse(raw)
    for single in ("From", "To", "Subject", "Message-ID", "Date"):
        assert len(message.get_all(single) or []) == 1, single
    (recipient,) = message["To"].addresses  # exactly one recipient, whatever the name
    assert recipient.addr_spec == to_address
    _check_display_name(raw, "To", recipient.display_name, to_name)
    assert str(message["Subject"]) == subject
    if from_address is not None:
        (sender,) = message["From"].addresses
        assert sender.addr_spec == from_address
        _check_display_name(raw, "From", sender.display_name, from_name)
    for structured in ("Message-ID", "List-Unsubscribe", "List-Unsubscribe-Post"):
        for value in raw_header_values(raw, structured):
            assert "=?" not in value, (structured, value)  # never RFC 2047 encoded
    (message_id,) = raw_header_values(raw, "Message-ID")
    assert re.fullmatch(r"<[^<>\s@]+@[^<>\s@]+>", message_id), message_id
    if unsubscribe:
        (links,) = raw_header_values(raw, "List-Unsubscribe")
        assert UNSUBSCRIBE_VALUE.match(links), links
        assert raw_header_values(raw, "List-Unsubscribe-Post") == ["List-Unsubscribe=One-Click"]
    return message
