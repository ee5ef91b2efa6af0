"""A recipient whose headers cannot be written is skipped with a named reason at preview and
schedule (row, address, field), not charged, and the rest of the campaign goes out with
byte-correct headers. Preview, test-send and schedule never answer 500 for any text."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.campaign.sending import build_mime, prepare_campaign_emails, send_due_emails
from outreach.config import Settings, use_settings
from outreach.credits.service import credit_service
from outreach.kit.clock import Clock
from outreach.kit.db import Database
from outreach.models import LedgerReason, Recipient, User
from outreach.models.campaign import Campaign, EmailStatus, ScheduledEmail
from outreach.models.recipient_list import ListStatus, RecipientList
from tests.campaign.conftest import make_outbox_mailbox, make_template
from tests.conftest import sign_in, wait_for_jobs
from tests.mailbox.wire import CONTROL_CHARACTERS, check_on_wire

MONDAY_0830_IST = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)
GOOD = [
    {"email": "ravi@acme.com", "name": "Ravi Kumar, Talent", "first_name": "Ravi"},
    {"email": "zoe@societe.example", "name": "Zoë Müller-Lüdenscheidt", "first_name": "Zoë"},
    {"email": "eve@globex.com", "name": 'Eve "E" <eve@evil.example>, x', "first_name": "Eve"},
    {"email": "li@initech.com", "name": "李小龙 🙂", "first_name": "小龙"},
]


@pytest.fixture
def https_settings(outbox_settings: Settings) -> Iterator[Settings]:
    changed = outbox_settings.model_copy(update={"base_url": "https://outreach.example.com"})
    use_settings(changed)
    yield changed
    use_settings(outbox_settings)


async def _list(session: AsyncSession, user: User, rows: list[dict[str, Any]]) -> RecipientList:
    recipient_list = RecipientList(user_id=user.id, name="Targets", status=ListStatus.ready)
    session.add(recipient_list)
    await session.flush()
    for position, row in enumerate(rows, start=2):
        session.add(
            Recipient(
                list_id=recipient_list.id,
                user_id=user.id,
                position=position,
                verification_status="deliverable",
                custom_fields=row.get("custom_fields", {}),
                **{k: v for k, v in row.items() if k != "custom_fields"},
            )
        )
    await session.flush()
    return recipient_list


async def sign_in_once(client: httpx.AsyncClient, who: str) -> uuid.UUID:
    """Signed in as ``who`` (once: a property test's examples share the client, and
    dev-login is rate limited)."""
    if client.headers.get("X-Test-User") != who:
        me = await sign_in(client, who, "Asha Rao")
        client.headers["X-Test-User"], client.headers["X-Test-User-Id"] = who, me["id"]
    return uuid.UUID(client.headers["X-Test-User-Id"])


async def _campaign(
    client: httpx.AsyncClient,
    session: AsyncSession,
    rows: list[dict[str, Any]],
    *,
    who: str = "asha@example.com",
    subject: str = "Backend role at {{ company | default('your team') }}, {{ first_name }}",
) -> tuple[str, User, Any]:
    user = await session.get_one(User, await sign_in_once(client, who))
    mailbox = await make_outbox_mailbox(
        session, user, address=f"me.{uuid.uuid4().hex[:8]}@example.com"
    )
    mailbox.display_name = "Asha Rao, Data Engineer"
    recipients = await _list(session, user, rows)
    template_id = await make_template(
        session, user, subject=subject, body_text="Hi {{ first_name | default('there') }},\n"
    )
    response = await client.post(
        "/v1/campaigns",
        json={
            "name": "Wire",
            "mailbox_id": str(mailbox.id),
            "template_id": str(template_id),
            "list_id": str(recipients.id),
            "start_at": MONDAY_0830_IST.isoformat(),
            "min_gap_seconds": 60,
            "jitter_seconds": 0,
            "company_cap": None,
        },
    )
    assert response.status_code == 201, response.text
    return response.json()["id"], user, mailbox


BAD = [
    ({"first_name": "Ra\u2028vi"}, "subject", "U+2028"),  # a name cell used in the subject
    ({"first_name": "Ra\u0085vi"}, "subject", "U+0085"),
    ({"first_name": "Ra\x0bvi"}, "subject", "U+000B"),
    ({"first_name": "Ravi\r\nBcc: victim@evil.example"}, "subject", "line break"),
    ({"company": "C" * 200, "first_name": "F" * 99}, "subject", "longer than 300"),
    ({"name": "Ravi\x0bKumar"}, "name", "U+000B"),
    ({"name": "Ra\u2029vi"}, "name", "U+2029"),
]


@pytest.mark.parametrize(("cells", "field", "why"), BAD)
async def test_one_bad_recipient_among_five_is_skipped_and_not_charged(
    client: httpx.AsyncClient,
    session: AsyncSession,
    https_settings: Settings,
    frozen_clock: Clock,
    cells: dict[str, str],
    field: str,
    why: str,
) -> None:
    frozen_clock.freeze(MONDAY_0830_IST - timedelta(hours=1))
    bad = {"email": "bad@hooli.com", "name": "Bad Row", "first_name": "Bad", **cells}
    rows = [*GOOD[:2], bad, *GOOD[2:]]
    campaign_id, user, _ = await _campaign(client, session, rows)

    preview = await client.post(f"/v1/campaigns/{campaign_id}/preview", params={"limit": 5})
    assert preview.status_code == 200, preview.text
    body = preview.json()
    assert body["to_send"] == 4, body
    assert body["skipped"] == {"invalid_header": 1}
    (skip,) = body["skipped_examples"]
    assert skip["email"] == "bad@hooli.com"
    assert skip["reason"] == "invalid_header"
    assert skip["row"] == 4  # the header is row 1; the bad one is the third data row
    assert skip["field"] == field
    assert why in skip["detail"]
    assert body["credit_cost"] == 4

    before = await credit_service.get_balance(session, user_id=user.id)
    scheduled = await client.post(
        f"/v1/campaigns/{campaign_id}/schedule", headers={"Idempotency-Key": "wire"}
    )
    assert scheduled.status_code == 202, scheduled.text
    assert scheduled.json()["charged_credits"] == 4
    assert scheduled.json()["skipped"] == {"invalid_header": 1}
    assert await credit_service.get_balance(session, user_id=user.id) == before - 4


async def test_the_other_four_are_prepared_and_sent_byte_correct(
    client: httpx.AsyncClient,
    session: AsyncSession,
    database: Database,
    https_settings: Settings,
    frozen_clock: Clock,
) -> None:
    frozen_clock.freeze(MONDAY_0830_IST - timedelta(hours=1))
    bad = {"email": "bad@hooli.com", "name": "Bad Row", "first_name": "Ra\u2028vi"}
    campaign_id, user, mailbox = await _campaign(client, session, [*GOOD[:2], bad, *GOOD[2:]])
    before = await credit_service.get_balance(session, user_id=user.id)
    scheduled = await client.post(
        f"/v1/campaigns/{campaign_id}/schedule", headers={"Idempotency-Key": "wire"}
    )
    assert scheduled.status_code == 202, scheduled.text
    await wait_for_jobs()
    assert (await client.get(f"/v1/campaigns/{campaign_id}")).json()["counts"]["ready"] == 4

    frozen_clock.freeze(MONDAY_0830_IST + timedelta(minutes=30))
    for _ in range(8):
        await send_due_emails(database)
        frozen_clock.advance(timedelta(minutes=2))
    detail = (await client.get(f"/v1/campaigns/{campaign_id}")).json()
    assert detail["counts"]["sent"] == 4
    assert detail["status"] == "completed"
    assert await credit_service.get_balance(session, user_id=user.id) == before - 4

    outbox: Path = https_settings.outbox_path / str(mailbox.id)
    files = {p.read_bytes() for p in outbox.glob("*.eml")}
    assert len(files) == 4
    by_address = {row["email"]: row for row in GOOD}
    for raw in files:
        to = raw.split(b"\r\nTo: ", 1)[1].split(b"\r\n", 1)[0]
        (row,) = [r for a, r in by_address.items() if f"<{a}>".encode() in to]
        check_on_wire(
            raw,
            to_address=row["email"],
            to_name=row["name"],
            subject=f"Backend role at your team, {row['first_name']}",
            from_address=mailbox.address,
            from_name="Asha Rao, Data Engineer",
        )


async def test_an_email_that_cannot_be_built_fails_alone_at_preparation(
    client: httpx.AsyncClient,
    session: AsyncSession,
    database: Database,
    https_settings: Settings,
    frozen_clock: Clock,
) -> None:
    """An email stored before these checks (or changed since) fails and is refunded when
    its message is built; the others are prepared."""
    frozen_clock.freeze(MONDAY_0830_IST - timedelta(hours=1))
    campaign_id, user, _ = await _campaign(client, session, GOOD)
    scheduled = await client.post(
        f"/v1/campaigns/{campaign_id}/schedule", headers={"Idempotency-Key": "wire"}
    )
    assert scheduled.status_code == 202
    await wait_for_jobs()
    balance = await credit_service.get_balance(session, user_id=user.id)
    campaign = await session.get_one(Campaign, uuid.UUID(campaign_id))
    rows = (
        await session.scalars(
            select(ScheduledEmail).where(ScheduledEmail.campaign_id == campaign.id)
        )
    ).all()
    for email in rows:  # back to pending, one of them with a subject no header can carry
        email.status, email.draft_id = EmailStatus.pending, None
    rows[1].subject = "Hello\u2028there"
    await session.flush()
    await prepare_campaign_emails(database, campaign.id)
    await session.refresh(rows[1])
    assert rows[1].status == EmailStatus.failed
    assert "U+2028" in (rows[1].last_error or "")
    assert rows[1].refunded
    for email in [rows[0], *rows[2:]]:
        await session.refresh(email)
        assert email.status == EmailStatus.ready
    assert await credit_service.get_balance(session, user_id=user.id) == balance + 1


async def test_test_send_names_a_recipient_it_cannot_write(
    client: httpx.AsyncClient, session: AsyncSession, https_settings: Settings
) -> None:
    bad = {"email": "bad@hooli.com", "first_name": "Ra\u2028vi"}
    campaign_id, _, _ = await _campaign(client, session, [bad, *GOOD])
    response = await client.post(f"/v1/campaigns/{campaign_id}/test-send")
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == "recipient_not_writable"
    assert problem["errors"][0]["loc"] == ["recipients", 2, "subject"]
    assert "bad@hooli.com" in problem["detail"]


async def test_a_template_subject_with_a_control_character_is_refused_at_save(
    client: httpx.AsyncClient, session: AsyncSession, https_settings: Settings
) -> None:
    await sign_in(client, "asha@example.com")
    for character in CONTROL_CHARACTERS[1:-1]:  # NUL and a lone surrogate: refused earlier
        response = await client.post(
            "/v1/templates",
            json={"name": "x", "subject": f"Hi{character}there", "body_text": "Hello"},
        )
        assert response.status_code == 422, (character, response.text)
        assert response.json()["errors"][0]["loc"] == ["body", "subject"], character


_CELL = st.text(
    alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)),
    max_size=80,
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(name=_CELL, first_name=_CELL, custom=_CELL, subject=_CELL)
async def test_any_cells_never_a_server_error_and_one_recipient_each(
    client: httpx.AsyncClient,
    session: AsyncSession,
    https_settings: Settings,
    frozen_clock: Clock,
    name: str,
    first_name: str,
    custom: str,
    subject: str,
) -> None:
    frozen_clock.freeze(MONDAY_0830_IST - timedelta(hours=1))
    await sign_in_once(client, "prop@example.com")
    rows = [
        *GOOD[:2],
        {
            "email": "any@hooli.com",
            "name": name or None,
            "first_name": first_name or None,
            "custom_fields": {"Note": custom},
        },
    ]
    template = subject.replace("{", "(").replace("}", ")") + " {{ first_name }} {{ note }}"
    who = "prop@example.com"
    saved = await client.post(
        "/v1/templates", json={"name": "t", "subject": template, "body_text": "Hi"}
    )
    if saved.status_code != 201:
        assert saved.status_code == 422 or saved.status_code == 401, saved.text
    campaign_id, user, mailbox = await _campaign(
        client, session, rows, who=who, subject=template if saved.status_code == 201 else "Hi"
    )
    await credit_service.apply_ledger_entry(
        session,
        user_id=user.id,
        delta=3,
        reason=LedgerReason.admin_grant,
        ref="test",
        idempotency_key=f"grant:{campaign_id}",
    )
    for path in ("preview", "test-send"):
        response = await client.post(f"/v1/campaigns/{campaign_id}/{path}")
        assert response.status_code < 500, (path, response.text)
    response = await client.post(
        f"/v1/campaigns/{campaign_id}/schedule", headers={"Idempotency-Key": campaign_id}
    )
    assert response.status_code in (202, 422), response.text
    if response.status_code == 422:
        return
    emails = (
        await session.scalars(
            select(ScheduledEmail).where(ScheduledEmail.campaign_id == uuid.UUID(campaign_id))
        )
    ).all()
    for email in emails:
        raw = build_mime(email, mailbox).data
        check_on_wire(
            raw, to_address=email.to_address, to_name=email.to_name, subject=email.subject
        )
