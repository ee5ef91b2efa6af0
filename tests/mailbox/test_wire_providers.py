"""Every provider puts the same correct bytes on the wire: the file outbox (.eml), SMTP
(the DATA an aiosmtpd server received) and Gmail (the ``raw`` the fake Gmail received),
drafts and direct sends, for awkward names, subjects in several scripts and long links."""

from __future__ import annotations

import itertools
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.mailbox.mime import OutgoingEmail, build_message
from outreach.mailbox.outbox import OutboxProvider
from outreach.mailbox.providers import MailProvider
from outreach.mailbox.service import mailbox_service
from outreach.models import Mailbox, MailboxMode
from tests.conftest import create_user, sign_in
from tests.fakes.gmail import FakeGmail
from tests.fakes.google import FakeGoogle
from tests.mailbox.conftest import SMTP_PASSWORD, SMTP_USER, SmtpServer, gmail_mailbox
from tests.mailbox.samples import LINK_LENGTHS, NAMES, SUBJECTS, link
from tests.mailbox.wire import check_on_wire, strict_parse

SENDER = "asha.rao@gmail.com"
MAILTO = "mailto:unsubscribe@outreach.example.com?subject=unsubscribe"
COUNT = max(len(NAMES), len(SUBJECTS))


def _emails() -> list[OutgoingEmail]:
    """Every name, subject and link length at least once, in changing combinations."""
    names, subjects = itertools.cycle(NAMES), itertools.cycle(SUBJECTS)
    lengths = itertools.cycle(LINK_LENGTHS)
    emails = []
    for n in range(COUNT):
        name = next(names)
        links = (link(next(lengths)),) + ((MAILTO,) if n % 2 else ())
        emails.append(
            OutgoingEmail(
                from_address=SENDER,
                from_name=NAMES[(n + 3) % len(NAMES)],
                to_address=f"lead{n}@firm{n}.example.com",
                to_name=name,
                subject=next(subjects),
                text=f"Hello {name or 'there'},\n",
                list_unsubscribe=links,
                one_click_unsubscribe=True,
            )
        )
    return emails


async def _send_all(provider: MailProvider, *, drafts: bool) -> None:
    for email in _emails():
        message = build_message(email)
        if drafts:
            await provider.send_draft(await provider.create_draft(message))
        else:
            await provider.send(message)


def _check_all(sent: list[bytes]) -> None:
    emails = _emails()
    assert len(sent) == len(emails)
    for raw, email in zip(sent, emails, strict=True):
        check_on_wire(
            raw,
            to_address=email.to_address,
            to_name=email.to_name,
            subject=email.subject,
            from_address=email.from_address,
            from_name=email.from_name,
        )


@pytest.mark.parametrize("drafts", [True, False], ids=["draft", "send"])
async def test_outbox_files(tmp_path: Path, drafts: bool) -> None:
    provider = OutboxProvider(tmp_path, address=SENDER)
    await _send_all(provider, drafts=drafts)
    files = sorted(tmp_path.glob("*.eml"), key=lambda p: p.stat().st_mtime_ns)
    by_recipient = {_to(p.read_bytes()): p.read_bytes() for p in files}
    _check_all([by_recipient[e.to_address] for e in _emails()])


def _to(raw: bytes) -> str:
    return str(strict_parse(raw)["To"].addresses[0].addr_spec)


async def test_smtp_data(
    client: httpx.AsyncClient, smtp: SmtpServer, session: AsyncSession
) -> None:
    await sign_in(client, SENDER)
    response = await client.post(
        "/v1/mailboxes/smtp",
        json={
            "address": SENDER,
            "host": "127.0.0.1",
            "port": smtp.port,
            "security": "starttls",
            "username": SMTP_USER,
            "password": SMTP_PASSWORD,
        },
    )
    assert response.status_code == 201, response.text
    mailbox = await session.get_one(Mailbox, uuid.UUID(response.json()["id"]))
    provider = await mailbox_service.provider_for(session, mailbox)
    await _send_all(provider, drafts=False)
    assert [e.rcpt_tos for e in smtp.recorder.messages] == [[e.to_address] for e in _emails()]
    _check_all([bytes(e.original_content or b"") for e in smtp.recorder.messages])


@pytest.mark.parametrize("mode", [MailboxMode.full, MailboxMode.send_only])
async def test_gmail_raw(
    session: AsyncSession, fake_google: FakeGoogle, fake_gmail: FakeGmail, mode: MailboxMode
) -> None:
    user = await create_user(session, "asha@example.com")
    mailbox, _ = await gmail_mailbox(session, fake_google, user, email=SENDER, mode=mode)
    provider = await mailbox_service.provider_for(session, mailbox)
    await _send_all(provider, drafts=mode == MailboxMode.full)
    _check_all([message.raw for message in fake_gmail.sent(SENDER)])
