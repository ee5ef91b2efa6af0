"""MIME building: headers, encodings, alternatives, attachments, limits, injection."""

from __future__ import annotations

import base64
import re
from email import policy
from email.parser import BytesParser

import pytest

from outreach.mailbox.mime import (
    GMAIL_MAX_MESSAGE_BYTES,
    Attachment,
    HeaderInjection,
    InvalidAddress,
    MessageTooLarge,
    OutgoingEmail,
    build_message,
    make_message_id,
    make_message_ids,
)

BASE = OutgoingEmail(
    from_address="asha.rao@gmail.com",
    from_name="Āshā Rao",
    to_address="hr@example.org",
    subject="Résumé for the backend role",
    text="Hi,\nattached.\n",
)


def _parse(data: bytes):  # type: ignore[no-untyped-def]
    return BytesParser(policy=policy.default).parsebytes(data)


def test_headers_are_encoded_and_parse_back() -> None:
    message = build_message(BASE)
    raw = message.data
    assert b"=?utf-8?" in raw  # RFC 2047 for the non-ASCII subject and name
    assert all(ord(c) < 128 for c in raw.decode("ascii"))
    parsed = _parse(raw)
    assert str(parsed["Subject"]) == "Résumé for the backend role"
    assert parsed["From"].addresses[0].display_name == "Āshā Rao"
    assert parsed["Message-ID"].endswith("@gmail.com>")
    assert parsed["Date"] is not None
    assert b"\r\n" in raw
    assert b"\n" not in raw.replace(b"\r\n", b"")


def test_text_html_attachment_and_unsubscribe_headers() -> None:
    pdf = b"%PDF-1.4 fake resume" * 10
    message = build_message(
        OutgoingEmail(
            **{
                **BASE.__dict__,
                "html": "<p>Hi</p>",
                "attachments": (Attachment("Asha Rao Résumé.pdf", pdf, "application/pdf"),),
                "list_unsubscribe": ("https://o.test/u/tok", "mailto:unsub@o.test"),
                "one_click_unsubscribe": True,
                "message_id": "<fixed-id@o.test>",
            }
        )
    )
    parsed = _parse(base64.urlsafe_b64decode(message.gmail_raw))
    assert parsed["List-Unsubscribe"] == "<https://o.test/u/tok>, <mailto:unsub@o.test>"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert parsed["Message-ID"] == "<fixed-id@o.test>"
    assert parsed.get_body(("html",)).get_content().strip() == "<p>Hi</p>"
    (attachment,) = list(parsed.iter_attachments())
    assert attachment.get_filename() == "Asha Rao Résumé.pdf"
    assert attachment.get_content() == pdf


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("subject", "Hello\r\nBcc: victim@example.com"),
        ("subject", "Hello\nBcc: victim@example.com"),
        ("from_name", "Asha\rBcc: x@y"),
        ("to_address", "hr@example.org\nBcc: x@y"),
        ("list_unsubscribe", ("https://o.test/u\r\nX: y",)),
    ],
)
def test_line_breaks_in_headers_are_refused(field: str, value: object) -> None:
    with pytest.raises(HeaderInjection):
        build_message(OutgoingEmail(**{**BASE.__dict__, field: value}))


def test_an_invalid_address_is_refused() -> None:
    with pytest.raises(InvalidAddress):
        build_message(OutgoingEmail(**{**BASE.__dict__, "to_address": "not-an-address"}))


def test_messages_over_gmails_limit_are_refused_up_front() -> None:
    big = Attachment(
        "big.pdf", b"\0" * (GMAIL_MAX_MESSAGE_BYTES * 3 // 4 + 1024), "application/pdf"
    )
    with pytest.raises(MessageTooLarge) as raised:
        build_message(OutgoingEmail(**{**BASE.__dict__, "attachments": (big,)}))
    assert raised.value.extra["size"] > GMAIL_MAX_MESSAGE_BYTES


def test_a_message_encoded_ahead_is_dated_when_sent() -> None:
    from datetime import UTC, datetime
    from email.utils import parsedate_to_datetime

    message = build_message(BASE, date=datetime(2026, 11, 30, 9, 0, tzinfo=UTC))
    later = message.dated(datetime(2026, 12, 1, 4, 5, 6, tzinfo=UTC))
    parsed = _parse(later.data)
    assert parsedate_to_datetime(str(parsed["Date"])) == datetime(2026, 12, 1, 4, 5, 6, tzinfo=UTC)
    assert later.data.count(b"Date: ") == 1
    # Nothing else changes: the other headers and the body are the same bytes.
    strip = lambda raw: b"\r\n".join(  # noqa: E731
        line for line in raw.split(b"\r\n") if not line.startswith(b"Date: ")
    )
    assert strip(later.data) == strip(message.data)


def test_message_ids_made_in_bulk_are_distinct_and_well_formed() -> None:
    ids = make_message_ids("example.com", 2_000)
    assert len(ids) == len(set(ids)) == 2_000
    for value in [*ids, make_message_id("example.com")]:
        assert re.fullmatch(r"<[0-9a-f]{32}@example\.com>", value)
    assert make_message_ids("example.com", 0) == []
