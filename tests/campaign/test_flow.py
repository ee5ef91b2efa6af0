"""End to end on the file outbox: list → template → campaign → preview → schedule →
ticks as the clock moves → exactly the expected messages, an exact ledger."""

from __future__ import annotations

import email
import uuid
from datetime import UTC, datetime, timedelta
from email import policy
from pathlib import Path

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.campaign.sending import send_due_emails
from outreach.config import Settings
from outreach.credits.service import credit_service
from outreach.kit.clock import Clock
from outreach.kit.db import Database
from outreach.models import LedgerEntry, User
from outreach.models.campaign import Campaign, EmailStatus, ScheduledEmail
from outreach.models.suppression import SuppressionReason
from outreach.recipient.suppression import suppression_service
from tests.campaign.conftest import make_list, make_outbox_mailbox, make_template
from tests.conftest import sign_in, wait_for_jobs

MONDAY_0830_IST = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)


async def setup_campaign(
    client: httpx.AsyncClient, session: AsyncSession, **overrides: object
) -> dict:
    me = await sign_in(client, "asha@example.com", "Asha Rao")
    user = await session.get(User, uuid.UUID(me["id"]))
    assert user is not None
    mailbox = await make_outbox_mailbox(session, user)
    recipients = await make_list(
        session,
        user,
        [
            {"email": "ravi@acme.com", "first_name": "Ravi", "company": "Acme"},
            {"email": "meera@globex.com", "first_name": "Meera", "company": "Globex"},
            {"email": "nocompany@initech.com", "first_name": "Nobody"},
            {"email": "gone@umbrella.com", "first_name": "Gone", "company": "Umbrella"},
            {"email": "bad@hooli.com", "company": "Hooli", "verification_status": "undeliverable"},
            {"email": "kiran@gmail.com", "company": "Pied Piper"},
        ],
    )
    await suppression_service.add(
        session,
        user_id=user.id,
        value="gone@umbrella.com",
        reason=SuppressionReason.manual,
        source="test",
    )
    template_id = await make_template(session, user)
    await session.flush()
    response = await client.post(
        "/v1/campaigns",
        json={
            "name": "Data roles",
            "mailbox_id": str(mailbox.id),
            "template_id": str(template_id),
            "list_id": str(recipients.id),
            "start_at": MONDAY_0830_IST.isoformat(),
            "min_gap_seconds": 300,
            "jitter_seconds": 0,
            **overrides,
        },
    )
    assert response.status_code == 201, response.text
    return {"campaign": response.json(), "user": user, "mailbox": mailbox, "me": me}


async def test_preview_counts_skips_cost_and_schedule(
    client: httpx.AsyncClient, session: AsyncSession, outbox_settings: Settings, frozen_clock: Clock
) -> None:
    frozen_clock.freeze(MONDAY_0830_IST - timedelta(hours=1))
    ctx = await setup_campaign(client, session)
    response = await client.post(
        f"/v1/campaigns/{ctx['campaign']['id']}/preview", params={"limit": 2}
    )
    assert response.status_code == 200, response.text
    preview = response.json()
    assert preview["to_send"] == 3
    assert preview["skipped"] == {"missing_variable": 1, "suppressed": 1, "undeliverable": 1}
    assert preview["credit_cost"] == 3
    first = preview["emails"][0]
    assert first["to"] == "ravi@acme.com"
    assert first["subject"] == "Hello Ravi"
    assert first["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert first["headers"]["List-Unsubscribe"].startswith("<http://testserver/u/")
    assert "ravi" not in first["headers"]["List-Unsubscribe"]  # the token reveals no address
    assert preview["schedule"]["first_send_at"].startswith("2026-11-30T03:30:00")  # 09:00 IST
    assert preview["schedule"]["emails_per_day"] == {"2026-11-30": 3}


async def test_schedule_prepare_send_exactly_once(
    client: httpx.AsyncClient,
    session: AsyncSession,
    database: Database,
    outbox_settings: Settings,
    frozen_clock: Clock,
) -> None:
    frozen_clock.freeze(MONDAY_0830_IST - timedelta(hours=1))
    ctx = await setup_campaign(client, session)
    campaign_id = ctx["campaign"]["id"]
    user_id = uuid.UUID(ctx["me"]["id"])
    balance_before = await credit_service.get_balance(session, user_id=user_id)

    url = f"/v1/campaigns/{campaign_id}/schedule"
    missing_key = await client.post(url)
    assert missing_key.status_code == 400
    first = await client.post(url, headers={"Idempotency-Key": "go"})
    assert first.status_code == 202, first.text
    assert first.json()["scheduled"] == 3
    assert first.json()["charged_credits"] == 3
    replay = await client.post(url, headers={"Idempotency-Key": "go"})
    assert replay.json() == first.json()
    other_key = await client.post(url, headers={"Idempotency-Key": "again"})
    assert other_key.status_code == 409
    assert other_key.json()["code"] == "campaign_state"
    assert await credit_service.get_balance(session, user_id=user_id) == balance_before - 3

    await wait_for_jobs()
    detail = (await client.get(f"/v1/campaigns/{campaign_id}")).json()
    assert detail["counts"]["ready"] == 3
    assert detail["status"] == "scheduled"

    outbox: Path = outbox_settings.outbox_path / str(ctx["mailbox"].id)
    sent_files: set[Path] = set()
    frozen_clock.freeze(MONDAY_0830_IST + timedelta(minutes=25))
    for _ in range(10):
        frozen_clock.advance(timedelta(minutes=5))
        await send_due_emails(database)
        sent_files = set(outbox.glob("*.eml"))
    rows = (
        await session.execute(
            select(ScheduledEmail.status, ScheduledEmail.due_at, ScheduledEmail.last_error)
        )
    ).all()
    assert len(sent_files) == 3, (rows, frozen_clock.now(), list(outbox.rglob("*")))
    messages = [email.message_from_bytes(p.read_bytes(), policy=policy.SMTP) for p in sent_files]
    assert sorted(str(m["To"]) for m in messages) == [
        "kiran@gmail.com",
        "meera@globex.com",
        "ravi@acme.com",
    ]
    for message in messages:
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert "/u/" in str(message["List-Unsubscribe"])
        assert (
            "unsubscribe here: http://testserver/u/" in message.get_body(("plain",)).get_content()
        )

    # More ticks send nothing again.
    frozen_clock.advance(timedelta(days=1))
    await send_due_emails(database)
    assert set(outbox.glob("*.eml")) == sent_files
    stats = (await client.get(f"/v1/campaigns/{campaign_id}/stats")).json()
    assert stats["counts"]["sent"] == 3
    assert stats["sent_per_day"] == {"2026-11-30": 3}
    assert (await client.get(f"/v1/campaigns/{campaign_id}")).json()["status"] == "completed"
    total = await session.scalar(
        select(func.coalesce(func.sum(LedgerEntry.delta), 0)).where(LedgerEntry.user_id == user_id)
    )
    assert total == await credit_service.get_balance(session, user_id=user_id) == balance_before - 3


async def test_cancel_refunds_unsent_and_unsubscribe_skips(
    client: httpx.AsyncClient,
    session: AsyncSession,
    database: Database,
    outbox_settings: Settings,
    frozen_clock: Clock,
) -> None:
    frozen_clock.freeze(MONDAY_0830_IST - timedelta(hours=1))
    ctx = await setup_campaign(client, session)
    campaign_id = ctx["campaign"]["id"]
    user_id = uuid.UUID(ctx["me"]["id"])
    before = await credit_service.get_balance(session, user_id=user_id)
    await client.post(f"/v1/campaigns/{campaign_id}/schedule", headers={"Idempotency-Key": "k"})
    await wait_for_jobs()

    # The first recipient unsubscribes through the link in a preview of their email.
    row = await session.scalar(
        select(ScheduledEmail).where(ScheduledEmail.to_address == "meera@globex.com")
    )
    assert row is not None
    from outreach.campaign.sending import build_mime

    link = build_mime(row, ctx["mailbox"]).headers()["List-Unsubscribe"].strip("<>")
    path = link.replace("http://testserver", "")
    page = await client.get(path)
    assert page.status_code == 200
    assert "Unsubscribe" in page.text
    for _ in range(2):  # idempotent
        done = await client.post(
            path, data={"List-Unsubscribe": "One-Click"}, headers={"X-CSRF-Token": ""}
        )
        assert done.status_code == 200
    forged = await client.post(path[:-3] + "abc")
    assert forged.status_code == 400
    assert forged.json()["code"] == "invalid_unsubscribe_link"
    await session.refresh(row)
    assert row.status == EmailStatus.skipped

    cancelled = await client.post(f"/v1/campaigns/{campaign_id}/cancel")
    assert cancelled.status_code == 200
    counts = cancelled.json()["counts"]
    assert (counts["skipped"], counts["cancelled"]) == (1, 2)
    assert await credit_service.get_balance(session, user_id=user_id) == before
    stats = (await client.get(f"/v1/campaigns/{campaign_id}/stats")).json()
    assert stats["unsubscribed"] == 1
    frozen_clock.advance(timedelta(days=2))
    assert await send_due_emails(database) == 0


async def test_bad_input(
    client: httpx.AsyncClient, session: AsyncSession, outbox_settings: Settings
) -> None:
    ctx = await setup_campaign(client, session)
    base = {
        "name": "x",
        "mailbox_id": str(ctx["mailbox"].id),
        "template_id": ctx["campaign"]["template_id"],
        "list_id": ctx["campaign"]["list_id"],
    }
    for change, field in [
        ({"window_start": "18:00", "window_end": "09:00"}, "window_start"),
        ({"window_days": []}, "window_days"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"daily_cap": 5000}, "daily_cap"),
        ({"window_days": [0, 7]}, "window_days"),
        # JSON types as documented: no booleans for numbers, no timestamps for date-times.
        ({"daily_cap": True}, "daily_cap"),
        ({"daily_cap": "5"}, "daily_cap"),
        ({"review_mode": 1}, "review_mode"),
        ({"start_at": 1_900_000_000}, "start_at"),
    ]:
        response = await client.post("/v1/campaigns", json={**base, **change})
        assert response.status_code == 422, (change, response.text)
        assert response.json()["errors"][0]["loc"][:2] == ["body", field], change
    other = await client.post("/v1/campaigns", json={**base, "mailbox_id": str(uuid.uuid4())})
    assert other.status_code == 404
    past = await client.post("/v1/campaigns", json={**base, "start_at": "2001-01-01T00:00:00Z"})
    campaign_id = past.json()["id"]
    response = await client.post(
        f"/v1/campaigns/{campaign_id}/schedule", headers={"Idempotency-Key": "p"}
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["body", "start_at"]


async def test_company_cap_null_is_off_on_create_and_patch(
    client: httpx.AsyncClient, session: AsyncSession, outbox_settings: Settings
) -> None:
    """The document says ``company_cap: null`` is off: create and PATCH both store NULL."""
    ctx = await setup_campaign(client, session, company_cap=None)
    off = ctx["campaign"]
    assert off["company_cap"] is None
    stored = await session.scalar(
        select(Campaign.company_cap).where(Campaign.id == uuid.UUID(off["id"]))
    )
    assert stored is None
    assert (await client.get(f"/v1/campaigns/{off['id']}")).json()["company_cap"] is None
    base = {key: off[key] for key in ("mailbox_id", "template_id", "list_id")}
    default = (await client.post("/v1/campaigns", json={"name": "d", **base})).json()
    assert default["company_cap"] == 2  # omitted: the documented default
    patched = await client.patch(f"/v1/campaigns/{default['id']}", json={"company_cap": None})
    assert patched.json()["company_cap"] is None
    again = await client.patch(f"/v1/campaigns/{off['id']}", json={"company_cap": 3})
    assert again.json()["company_cap"] == 3
