"""An account with a sample of every kind of data we hold, made through the API
where the API makes it (uploads, scheduling, sending) and as rows otherwise."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.campaign.sending import send_due_emails
from outreach.config import Settings, use_settings
from outreach.kit.clock import Clock
from outreach.kit.db import Database
from outreach.models import (
    FailedJob,
    Mailbox,
    PaymentOrder,
    PaymentOrderStatus,
    RecipientList,
    Resume,
    SuppressionReason,
    User,
    WebhookEvent,
    WebhookEventStatus,
)
from outreach.recipient.suppression import suppression_service
from tests.campaign.conftest import make_outbox_mailbox, make_template
from tests.campaign.test_flow import MONDAY_0830_IST
from tests.conftest import sign_in, wait_for_jobs
from tests.fakes.google import FakeGoogle
from tests.fakes.google_oauth import FAKE_CLIENT_SECRET, Grant
from tests.mailbox.conftest import gmail_mailbox
from tests.resume import documents
from tests.resume.conftest import uploaded

GMAIL = "priya.v.jobs@gmail.com"
LIST_CSV = (
    b"email,first_name,company\n"
    b"ravi@acme.com,Ravi,Acme\n"
    b"meera@globex.com,Meera,Globex\n"
    b"sam@initech.com,Sam,Initech\n"
)


@pytest.fixture
def account_settings(
    settings: Settings, fake_google: FakeGoogle, tmp_path: Path
) -> Iterator[Settings]:
    """Outbox mailboxes allowed, Google's OAuth endpoints on the fake (revocation)."""
    changed = settings.model_copy(
        update={
            "outbox_path": tmp_path / "outbox",
            "allow_outbox_mailboxes": True,
            "gmail_client_secret": SecretStr(FAKE_CLIENT_SECRET),
            "google_token_url": f"{fake_google.url}/token",
            "google_revoke_url": f"{fake_google.url}/revoke",
        }
    )
    use_settings(changed)
    yield changed
    use_settings(settings)


@dataclass
class Account:
    user: User
    me: dict
    grant: Grant
    resume: Resume
    recipient_list: RecipientList
    campaign_id: str
    payment: PaymentOrder


async def populate_account(
    client: httpx.AsyncClient,
    session: AsyncSession,
    database: Database,
    fake_google: FakeGoogle,
    clock: Clock,
) -> Account:
    clock.freeze(MONDAY_0830_IST - timedelta(hours=1))
    me = await sign_in(client, documents.EMAIL, documents.NAME)
    user = await session.get(User, uuid.UUID(me["id"]))
    assert user is not None
    resume_id = (await uploaded(client, documents.pdf_resume(), "Priya CV.pdf"))["id"]
    upload = await client.post(
        "/v1/recipients/lists/upload",
        files={"file": ("targets.csv", LIST_CSV)},
        data={"name": "Targets"},
    )
    assert upload.status_code == 202, upload.text
    await wait_for_jobs()
    outbox = await make_outbox_mailbox(session, user, address=documents.EMAIL)
    _, grant = await gmail_mailbox(session, fake_google, user, email=GMAIL)
    template_id = await make_template(session, user)
    await suppression_service.add(
        session,
        user_id=user.id,
        value="nobody@umbrella.com",
        reason=SuppressionReason.manual,
        source="test",
    )
    payment = await _paid_order(session, user)
    session.add(
        FailedJob(
            task_name="recipient.import_list",
            task_id="t-1",
            args={"args": [], "kwargs": {"list_id": upload.json()["id"]}},
            error=f"ValueError: could not read the file of {documents.EMAIL}",
            traceback="",
            attempts=3,
            retried_at=None,
        )
    )
    await session.flush()
    campaign = await client.post(
        "/v1/campaigns",
        json={
            "name": "Data roles",
            "mailbox_id": str(outbox.id),
            "template_id": str(template_id),
            "list_id": upload.json()["id"],
            "start_at": MONDAY_0830_IST.isoformat(),
            "min_gap_seconds": 3600,
            "jitter_seconds": 0,
        },
    )
    assert campaign.status_code == 201, campaign.text
    scheduled = await client.post(
        f"/v1/campaigns/{campaign.json()['id']}/schedule", headers={"Idempotency-Key": "go"}
    )
    assert scheduled.status_code == 202, scheduled.text
    await wait_for_jobs()
    clock.freeze(MONDAY_0830_IST + timedelta(hours=1))  # the first email is due, not the rest
    assert await send_due_emails(database) == 1
    resume = await session.get(Resume, uuid.UUID(resume_id))
    recipient_list = await session.get(RecipientList, uuid.UUID(upload.json()["id"]))
    assert resume is not None
    assert recipient_list is not None
    return Account(user, me, grant, resume, recipient_list, campaign.json()["id"], payment)


async def _paid_order(session: AsyncSession, user: User) -> PaymentOrder:
    order = PaymentOrder(
        user_id=user.id,
        pack_id="starter",
        credits=100,
        amount_paise=19900,
        currency="INR",
        status=PaymentOrderStatus.paid,
        razorpay_order_id=f"order_{uuid.uuid4().hex[:14]}",
        razorpay_payment_id=f"pay_{uuid.uuid4().hex[:14]}",
        paid_via="webhook",
    )
    session.add(order)
    await session.flush()
    body = {
        "event": "payment.captured",
        "payload": {
            "payment": {
                "entity": {
                    "id": order.razorpay_payment_id,
                    "order_id": order.razorpay_order_id,
                    "amount": 19900,
                    "email": documents.EMAIL,
                    "contact": documents.PHONE,
                }
            }
        },
    }
    session.add(
        WebhookEvent(
            provider="razorpay",
            event_id=f"evt_{uuid.uuid4().hex[:14]}",
            event_type="payment.captured",
            raw_body=json.dumps(body),
            status=WebhookEventStatus.processed,
            payment_order_id=order.id,
        )
    )
    await session.flush()
    return order


async def mailbox_count(session: AsyncSession, user_id: uuid.UUID) -> int:
    return len((await session.scalars(select(Mailbox.id).where(Mailbox.user_id == user_id))).all())
