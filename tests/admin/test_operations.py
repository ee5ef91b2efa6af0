"""Admin operations: failed jobs (list, retry a job, retry a failed send through the
ledger), stats, every user's campaigns; all audited, all refused to normal users."""

from __future__ import annotations

import re
import uuid
from collections import Counter
from datetime import timedelta

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.campaign import sending
from outreach.config import Settings
from outreach.credits.service import credit_service
from outreach.kit.clock import Clock, utcnow
from outreach.kit.db import Database
from outreach.kit.jobs import enqueue, job
from outreach.models import (
    AuditLog,
    Campaign,
    CampaignStatus,
    EmailStatus,
    FailedJob,
    LedgerEntry,
    PaymentOrder,
    PaymentOrderStatus,
    ScheduledEmail,
)
from tests.admin.test_endpoints import sign_in_admin
from tests.campaign.conftest import make_outbox_mailbox, make_template
from tests.campaign.test_gmail import (  # noqa: F401 (gmail_settings is a fixture)
    GMAIL,
    START,
    gmail_settings,
    run_ticks,
    scheduled_campaign,
)
from tests.conftest import create_user, sign_in, wait_for_jobs
from tests.fakes.gmail import FakeGmail
from tests.fakes.google import FakeGoogle

FLAKY = "test.admin.flaky"
flaky_runs: Counter[str] = Counter()
broken: set[str] = set()


@job(FLAKY, max_attempts=2)
async def flaky(key: str) -> None:
    flaky_runs[key] += 1
    if key in broken:
        raise RuntimeError(f"{key} is broken")


async def audited(session: AsyncSession, action: str) -> list[AuditLog]:
    rows = await session.scalars(select(AuditLog).where(AuditLog.action == action))
    return list(rows.all())


async def test_a_normal_user_gets_403_on_every_admin_endpoint(
    app: FastAPI, client: httpx.AsyncClient
) -> None:
    await sign_in(client, "plain@example.com")
    # The OpenAPI document lists every route, so a new admin endpoint is covered too.
    admin_paths = {p: ops for p, ops in app.openapi()["paths"].items() if p.startswith("/v1/admin")}
    assert {
        "/v1/admin/failed-jobs",
        "/v1/admin/failed-jobs/{failed_job_id}/retry",
        "/v1/admin/stats",
        "/v1/admin/campaigns",
        "/v1/admin/users",
        "/v1/admin/audit-logs",
    } <= set(admin_paths)
    for template, operations in admin_paths.items():
        path = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), template)
        for method in operations:
            response = await client.request(
                method, path, json={}, headers={"Idempotency-Key": str(uuid.uuid4())}
            )
            assert response.status_code == 403, (method, template, response.text)
            assert response.json()["code"] == "admin_required"


class TestFailedJobRetry:
    async def test_a_failed_job_is_enqueued_again_once(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        admin = await sign_in_admin(client, session)
        key = uuid.uuid4().hex
        broken.add(key)
        await enqueue(FLAKY, key=key)
        await wait_for_jobs()
        assert flaky_runs[key] == 2  # both attempts failed
        page = (await client.get("/v1/admin/failed-jobs", params={"task_name": FLAKY})).json()
        [item] = [i for i in page["items"] if i["args"]["kwargs"] == {"key": key}]
        assert item["retried_at"] is None
        assert item["attempts"] == 2
        assert "is broken" in item["error"]

        broken.discard(key)  # fixed: an operator retries
        url = f"/v1/admin/failed-jobs/{item['id']}/retry"
        first = await client.post(url)
        await wait_for_jobs()
        again = await client.post(url)
        replay = await client.post(url, headers={"Idempotency-Key": "r-1"})
        replay_again = await client.post(url, headers={"Idempotency-Key": "r-1"})
        await wait_for_jobs()
        assert first.status_code == again.status_code == replay.status_code == 200, first.text
        assert first.json() == again.json() == replay.json() == replay_again.json()
        assert first.json()["action"] == "job_enqueued"
        assert first.json()["charged_credits"] == 0
        assert first.json()["failed_job"]["retried_at"] is not None
        assert flaky_runs[key] == 3  # ran once more, not once per request
        retries = await audited(session, "admin.failed_job_retry")
        assert [(r.actor_id, r.target_id) for r in retries] == [
            (uuid.UUID(admin["id"]), item["id"])
        ]
        assert await audited(session, "admin.failed_jobs_viewed")
        not_retried = await client.get("/v1/admin/failed-jobs", params={"retried": "false"})
        assert item["id"] not in {i["id"] for i in not_retried.json()["items"]}

    async def test_unknown_ids_and_jobs_that_no_longer_exist(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        await sign_in_admin(client, session)
        missing = await client.post(f"/v1/admin/failed-jobs/{uuid.uuid4()}/retry")
        assert missing.status_code == 404
        assert missing.json()["code"] == "failed_job_not_found"
        gone = FailedJob(
            task_name="test.admin.renamed_long_ago",
            task_id="t-1",
            args={"args": [], "kwargs": {}},
            error="RuntimeError: x",
            traceback="",
            attempts=3,
            retried_at=None,
        )
        session.add(gone)
        await session.flush()
        refused = await client.post(f"/v1/admin/failed-jobs/{gone.id}/retry")
        assert refused.status_code == 409
        assert refused.json()["code"] == "failed_job_not_retryable"
        await session.refresh(gone)
        assert gone.retried_at is None  # nothing half-applied

    async def test_a_failed_send_is_charged_again_and_sent_exactly_once(
        self,
        client: httpx.AsyncClient,
        session: AsyncSession,
        database: Database,
        gmail_settings: Settings,  # noqa: F811
        fake_google: FakeGoogle,
        fake_gmail: FakeGmail,
        frozen_clock: Clock,
    ) -> None:
        frozen_clock.freeze(START - timedelta(hours=1))
        campaign, user = await scheduled_campaign(session, fake_google, emails=2)
        await sending.prepare_campaign_emails(database, campaign.id)
        box = fake_gmail.mailbox(GMAIL)
        box.drafts.pop(next(iter(box.drafts)))  # the user deleted one draft in Gmail
        await run_ticks(database, frozen_clock)
        assert len(fake_gmail.sent(GMAIL)) == 1
        await session.refresh(campaign)
        assert campaign.status == CampaignStatus.completed
        user_id = user.id  # type: ignore[attr-defined]
        failed_email = await session.scalar(
            select(ScheduledEmail).where(ScheduledEmail.status == EmailStatus.failed)
        )
        assert failed_email is not None
        assert failed_email.refunded

        await sign_in_admin(client, session)
        page = (
            await client.get("/v1/admin/failed-jobs", params={"task_name": "campaign.send_email"})
        ).json()
        [item] = page["items"]
        assert item["args"]["email_id"] == str(failed_email.id)
        url = f"/v1/admin/failed-jobs/{item['id']}/retry"

        balance = await credit_service.get_balance(session, user_id=user_id)
        await credit_service.apply_ledger_entry(
            session,
            user_id=user_id,
            delta=-balance,
            reason="admin_deduct",
            ref="test",
            idempotency_key=f"drain:{user_id}",
        )
        short = await client.post(url)
        assert short.status_code == 402, short.text
        assert short.json()["code"] == "insufficient_credits"
        retried_at = select(FailedJob.retried_at).where(FailedJob.id == uuid.UUID(item["id"]))
        assert await session.scalar(retried_at) is None
        emails_before = await session.scalar(select(func.count()).select_from(ScheduledEmail))
        assert emails_before == 2  # nothing changed

        await credit_service.apply_ledger_entry(
            session,
            user_id=user_id,
            delta=5,
            reason="admin_grant",
            ref="test",
            idempotency_key=f"refill:{user_id}",
        )
        first = await client.post(url)
        assert first.status_code == 200, first.text
        assert first.json()["action"] == "send_rescheduled"
        assert first.json()["charged_credits"] == 1
        await wait_for_jobs()
        again = await client.post(url)
        assert again.json() == first.json()
        assert await credit_service.get_balance(session, user_id=user_id) == 4
        charges = (
            await session.scalars(select(LedgerEntry).where(LedgerEntry.reason == "campaign_retry"))
        ).all()
        assert [(c.delta, c.ref) for c in charges] == [(-1, str(failed_email.id))]
        await session.refresh(campaign)
        assert campaign.status == CampaignStatus.sending  # reopened

        for _ in range(15):
            await sending.send_due_emails(database)
            frozen_clock.advance(timedelta(minutes=1))
        sent = fake_gmail.sent(GMAIL)
        assert len(sent) == 2
        assert sorted(str(m.parsed["To"]) for m in sent) == sorted(
            {str(m.parsed["To"]) for m in sent}
        )  # two different recipients: the failed one got it now, nobody twice
        rows = (
            await session.scalars(
                select(ScheduledEmail).where(ScheduledEmail.campaign_id == campaign.id)
            )
        ).all()
        assert sorted(r.status for r in rows) == [
            EmailStatus.failed,
            EmailStatus.sent,
            EmailStatus.sent,
        ]
        retry = next(
            r for r in rows if r.id != failed_email.id and r.to_address == failed_email.to_address
        )
        assert retry.status == EmailStatus.sent
        assert retry.rfc822_message_id != failed_email.rfc822_message_id
        assert (await client.post(url)).json() == first.json()  # still one retry
        assert await credit_service.get_balance(session, user_id=user_id) == 4


async def test_stats_count_exactly(
    client: httpx.AsyncClient, session: AsyncSession, frozen_clock: Clock
) -> None:
    admin = await sign_in_admin(client, session)
    now = frozen_clock.now()
    asha = await create_user(session, "asha@example.com", balance=7)
    mailbox = await make_outbox_mailbox(session, asha)
    template_id = await make_template(session, asha)
    campaign = Campaign(
        user_id=asha.id,
        name="c",
        mailbox_id=mailbox.id,
        template_id=template_id,
        start_at=now,
        status=CampaignStatus.sending,
    )
    session.add(campaign)
    await session.flush()
    sent_at = [now - timedelta(minutes=5), now - timedelta(days=3), now - timedelta(days=40)]
    for n, moment in enumerate([*sent_at, None]):
        session.add(
            ScheduledEmail(
                campaign_id=campaign.id,
                user_id=asha.id,
                mailbox_id=mailbox.id,
                to_address=f"lead{n}@firm.com",
                due_at=now,
                subject="s",
                body_text="b",
                rfc822_message_id=f"<{uuid.uuid4().hex}@example.com>",
                status=EmailStatus.sent if moment else EmailStatus.failed,
                sent_at=moment,
            )
        )
    for amount, status, refunded, days in [
        (19900, PaymentOrderStatus.paid, 0, 1),
        (79900, PaymentOrderStatus.refunded, 79900, 45),
        (249900, PaymentOrderStatus.created, 0, 0),
    ]:
        session.add(
            PaymentOrder(
                user_id=asha.id,
                pack_id="p",
                credits=100,
                amount_paise=amount,
                currency="INR",
                status=status,
                razorpay_order_id=f"order_{uuid.uuid4().hex[:14]}",
                refunded_paise=refunded,
                paid_at=None
                if status == PaymentOrderStatus.created
                else now - timedelta(days=days),
            )
        )
    await session.flush()
    admin_balance = await credit_service.get_balance(session, user_id=uuid.UUID(admin["id"]))
    response = await client.get("/v1/admin/stats")
    assert response.status_code == 200, response.text
    stats = response.json()
    assert stats["users"] == 2
    assert stats["deleted_users"] == 0
    assert stats["active_mailboxes"] == 1
    today_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    assert stats["emails_sent_today"] == sum(1 for t in sent_at if t >= today_start)
    assert stats["emails_sent_last_30_days"] == 2
    assert stats["failed_sends_last_30_days"] == 1
    assert stats["payments_captured"] == 2
    assert stats["revenue_paise"] == 19900 + 79900
    assert stats["revenue_last_30_days_paise"] == 19900
    assert stats["refunded_paise"] == 79900
    assert stats["net_revenue_paise"] == 19900
    assert stats["credits_outstanding"] == 7 + admin_balance
    assert await audited(session, "admin.stats_viewed")


async def test_campaigns_of_every_user_filtered_by_status(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    await sign_in_admin(client, session)
    made: dict[str, CampaignStatus] = {}
    for email, status in [
        ("asha@example.com", CampaignStatus.draft),
        ("ravi@example.com", CampaignStatus.paused),
        ("meera@example.com", CampaignStatus.paused),
    ]:
        owner = await create_user(session, email)
        mailbox = await make_outbox_mailbox(session, owner)
        template_id = await make_template(session, owner)
        campaign = Campaign(
            user_id=owner.id,
            name=f"{email} run",
            mailbox_id=mailbox.id,
            template_id=template_id,
            start_at=utcnow(),
            status=status,
        )
        session.add(campaign)
        await session.flush()
        made[email] = status
    everything = (await client.get("/v1/admin/campaigns")).json()
    assert {(c["user_email"], c["status"]) for c in everything["items"]} == {
        (email, status.value) for email, status in made.items()
    }
    paused = (await client.get("/v1/admin/campaigns", params={"status": "paused"})).json()
    assert sorted(c["user_email"] for c in paused["items"]) == [
        "meera@example.com",
        "ravi@example.com",
    ]
    assert all(c["counts"]["total"] == 0 for c in paused["items"])
    one = (await client.get("/v1/admin/campaigns", params={"limit": 1})).json()
    assert len(one["items"]) == 1
    assert one["next_cursor"]
    bad = await client.get("/v1/admin/campaigns", params={"status": "exploded"})
    assert bad.status_code == 422
    views = await audited(session, "admin.campaigns_viewed")
    assert {v.details["status"] for v in views} == {None, "paused"}
