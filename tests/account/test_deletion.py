"""DELETE /v1/me: confirmed by a second request; afterwards no table holds the user's
email (every column of every table is scanned), stored files are gone, Gmail access
is revoked at Google, unsent emails are refunded through the ledger, and the money
records stay, anonymised."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.account.erasure import HANDLED_TABLES
from outreach.config import Settings
from outreach.credits.service import credit_service
from outreach.kit.clock import Clock
from outreach.kit.db import Base, Database
from outreach.models import (
    AuditLog,
    EmailStatus,
    LedgerEntry,
    PaymentOrder,
    ScheduledEmail,
    User,
    WebhookEvent,
)
from tests.account.conftest import GMAIL, populate_account
from tests.conftest import create_user, make_client, sign_in, wait_for_jobs
from tests.fakes.google import FakeGoogle
from tests.resume import documents

PERSONAL = [documents.EMAIL, GMAIL, documents.PHONE, documents.NAME]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


async def columns_mentioning(session: AsyncSession, needles: list[str]) -> set[str]:
    """``table.column`` of every stored value containing one of ``needles``, found by
    reading every row of every table the models declare."""
    found = set()
    for table in Base.metadata.sorted_tables:
        for row in (await session.execute(table.select())).mappings():
            for column, value in row.items():
                text = _text(value).lower()
                if any(needle.lower() in text for needle in needles):
                    found.add(f"{table.name}.{column}")
    return found


async def confirm_token(client: httpx.AsyncClient) -> str:
    response = await client.delete("/v1/me")
    assert response.status_code == 202, response.text
    token: str = response.json()["confirmation_token"]
    return token


async def test_deletion_leaves_no_trace_of_the_email_and_keeps_the_money_records(
    app: FastAPI,
    client: httpx.AsyncClient,
    session: AsyncSession,
    database: Database,
    account_settings: Settings,
    fake_google: FakeGoogle,
    frozen_clock: Clock,
) -> None:
    account = await populate_account(client, session, database, fake_google, frozen_clock)
    user_id = account.user.id
    storage = app.state.storage
    file_keys = [account.resume.file_key, account.recipient_list.file_key]
    assert all([await storage.exists(key) for key in file_keys])
    before = await columns_mentioning(session, PERSONAL)
    # The scan finds the data where it lives (so an empty result below means something).
    assert {
        "users.email",
        "mailboxes.address",
        "resumes.text",
        "webhook_events.raw_body",
        "audit_logs.details",
        "failed_jobs.error",
        "users.name",
    } <= before
    balance = await credit_service.get_balance(session, user_id=user_id)

    first = await client.delete("/v1/me")
    assert first.status_code == 202, first.text
    pending = first.json()
    assert pending["preview"] == {
        "mailboxes": 2,
        "campaigns": 1,
        "unsent_emails": 2,
        "recipient_lists": 1,
        "templates": 1,
        "resumes": 1,
        "credit_balance": balance,
    }
    response = await client.delete("/v1/me", params={"confirm": pending["confirmation_token"]})
    assert response.status_code == 200, response.text
    await wait_for_jobs()
    assert response.json() | {"deleted_at": None} == {
        "deleted_at": None,
        "mailboxes_revoked": 1,
        "emails_cancelled": 2,
        "credits_refunded": 2,
        "credits_forfeited": balance + 2,
        "files_deleted": 2,
    }

    assert await columns_mentioning(session, PERSONAL) == set()
    assert not any([await storage.exists(key) for key in file_keys])
    assert account.grant.refresh_token in fake_google.oauth.revocations
    assert account.grant.revoked

    # The ledger tells the story and the balance is 0: refunds, then the rest forfeited.
    entries = (
        await session.scalars(
            select(LedgerEntry)
            .where(LedgerEntry.user_id == user_id)
            .order_by(LedgerEntry.created_at)
        )
    ).all()
    assert sum(e.delta for e in entries) == 0
    assert await credit_service.get_balance(session, user_id=user_id) == 0
    assert [e.reason for e in entries].count("campaign_refund") == 2
    assert entries[-1].reason == "account_deleted"
    assert entries[-1].delta == -(balance + 2)
    # Payment records stay for the accounts, without the payer's details.
    order = await session.scalar(select(PaymentOrder).where(PaymentOrder.user_id == user_id))
    assert order is not None
    assert (order.amount_paise, order.razorpay_payment_id) == (
        19900,
        account.payment.razorpay_payment_id,
    )
    event = await session.scalar(
        select(WebhookEvent).where(WebhookEvent.payment_order_id == order.id)
    )
    assert event is not None
    entity = json.loads(event.raw_body)["payload"]["payment"]["entity"]
    assert entity["amount"] == 19900
    assert entity["email"] == entity["contact"] == "[deleted]"
    # Nothing else of the user's is left.
    assert (
        await session.scalar(
            select(func.count())
            .select_from(ScheduledEmail)
            .where(ScheduledEmail.user_id == user_id)
        )
        == 0
    )
    user = await session.scalar(
        select(User).where(User.id == user_id).execution_options(populate_existing=True)
    )
    assert user is not None
    assert (user.name, user.google_sub, user.referral_code, user.picture) == (
        None,
        None,
        None,
        None,
    )
    assert user.email.endswith("@deleted.invalid")
    deleted = await session.scalar(select(AuditLog).where(AuditLog.action == "account.deleted"))
    assert deleted is not None
    assert deleted.details["emails_cancelled"] == 2
    assert deleted.ip is None

    # The session is gone; signing in again makes a fresh account without the signup
    # grant, and it cannot be "referred" again.
    assert (await client.get("/v1/auth/me")).status_code == 401
    friend = await create_user(session, "friend@example.com")
    again = await sign_in(client, documents.EMAIL)
    assert again["id"] != str(user_id)
    assert again["credit_balance"] == 0
    referred = await client.post("/v1/referrals/apply", json={"code": friend.referral_code})
    assert referred.status_code == 409, referred.text
    assert referred.json()["code"] == "referral_after_deletion"


async def test_the_confirmation_is_bound_to_the_session_and_expires(
    app: FastAPI, client: httpx.AsyncClient, session: AsyncSession, frozen_clock: Clock
) -> None:
    me = await sign_in(client, "asha@example.com")
    token = await confirm_token(client)
    async with make_client(app) as other_browser:
        await sign_in(other_browser, "asha@example.com")
        stolen = await other_browser.delete("/v1/me", params={"confirm": token})
        assert stolen.status_code == 422
        assert stolen.json()["code"] == "deletion_confirmation_invalid"
        someone_else = await sign_in(other_browser, "ravi@example.com")
        assert someone_else["id"] != me["id"]
        assert (await other_browser.delete("/v1/me", params={"confirm": token})).status_code == 422
    forged = await client.delete("/v1/me", params={"confirm": token[:-2] + "xx"})
    assert forged.status_code == 422
    assert forged.json()["errors"][0]["loc"] == ["query", "confirm"]
    frozen_clock.advance(timedelta(minutes=11))
    late = await client.delete("/v1/me", params={"confirm": token})
    assert late.status_code == 422
    assert late.json()["code"] == "deletion_confirmation_expired"
    assert await session.get(User, uuid.UUID(me["id"])) is not None
    fresh = await confirm_token(client)
    assert (await client.delete("/v1/me", params={"confirm": fresh})).status_code == 200
    assert (await client.delete("/v1/me")).status_code == 401


async def test_an_email_being_sent_blocks_deletion_until_it_is_settled(
    client: httpx.AsyncClient,
    session: AsyncSession,
    database: Database,
    account_settings: Settings,
    fake_google: FakeGoogle,
    frozen_clock: Clock,
) -> None:
    account = await populate_account(client, session, database, fake_google, frozen_clock)
    await session.execute(
        update(ScheduledEmail)
        .where(
            ScheduledEmail.user_id == account.user.id, ScheduledEmail.status == EmailStatus.ready
        )
        .values(status=EmailStatus.sending)
    )
    token = await confirm_token(client)
    blocked = await client.delete("/v1/me", params={"confirm": token})
    assert blocked.status_code == 409
    assert blocked.json()["code"] == "emails_in_flight"
    assert await columns_mentioning(session, [documents.EMAIL])  # nothing was erased


def test_every_table_with_user_rows_is_handled_by_deletion() -> None:
    """A new table holding user rows (or rows of their rows) must be added to the
    erasure, or kept on purpose: either way it is named in HANDLED_TABLES."""
    tables = Base.metadata.sorted_tables
    owned = {t.name for t in tables if t.name == "users" or "user_id" in t.columns}
    owned |= {t.name for t in tables if any(fk.column.table.name in owned for fk in t.foreign_keys)}
    assert owned - set(HANDLED_TABLES) == set()
