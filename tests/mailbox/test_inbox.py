"""The reply and bounce check against the fake Gmail: what each incoming message means,
what it costs in Gmail calls, and what the campaign does about it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.campaign import replies, sending
from outreach.campaign.schemas import CampaignCreate, StepIn
from outreach.campaign.service import campaign_service
from outreach.config import Settings, use_settings
from outreach.credits.service import credit_service
from outreach.kit.clock import Clock
from outreach.kit.db import Database
from outreach.mailbox import inbox
from outreach.mailbox.events import InboxMessageEvent
from outreach.mailbox.gmail import GmailClient, GmailError, QuotaBudget
from outreach.mailbox.inbox import THREADS_GET, check_mailbox, classify
from outreach.models import EmailEvent, EmailEventKind, Mailbox, MailboxMode, Suppression
from outreach.models.campaign import Campaign, EmailStatus, ScheduledEmail
from tests.campaign.conftest import make_list, make_template
from tests.conftest import create_user
from tests.fakes.gmail import FakeGmail, StoredMessage
from tests.fakes.google import FakeGoogle
from tests.fakes.google_oauth import FAKE_CLIENT_SECRET
from tests.mailbox.conftest import gmail_mailbox, watched_mailbox

START = datetime(2026, 11, 30, 3, 30, tzinfo=UTC)  # a Monday, 09:00 in Kolkata
GMAIL = "asha.rao@gmail.com"
PROFILE = "gmail.users.getProfile"


@pytest.fixture
def gmail_settings(
    settings: Settings, fake_google: FakeGoogle, fake_gmail: FakeGmail, tmp_path: Path
) -> Iterator[Settings]:
    configured = settings.model_copy(
        update={
            "gmail_client_secret": SecretStr(FAKE_CLIENT_SECRET),
            "google_token_url": f"{fake_google.url}/token",
            "google_revoke_url": f"{fake_google.url}/revoke",
            "gmail_api_url": fake_gmail.url,
            "gmail_retry_base_seconds": 0.001,
            "outbox_path": tmp_path / "outbox",
        }
    )
    use_settings(configured)
    yield configured
    use_settings(settings)


class TestClassify:
    OWN = "asha.rao@gmail.com"

    @pytest.mark.parametrize(
        ("headers", "kind"),
        [
            ({"from": "Lead <lead@firm.com>", "subject": "Re: Hello"}, EmailEventKind.replied),
            ({"from": "lead@firm.com", "auto-submitted": "auto-replied"}, "auto_reply"),
            ({"from": "lead@firm.com", "auto-submitted": "no", "subject": "Re: x"}, "replied"),
            ({"from": "lead@firm.com", "x-autoreply": "yes"}, "auto_reply"),
            ({"from": "lead@firm.com", "precedence": "auto_reply"}, "auto_reply"),
            ({"from": "lead@firm.com", "subject": "Out of Office: Re: Hello"}, "auto_reply"),
            ({"from": "lead@firm.com", "subject": "Automatic reply: Hello"}, "auto_reply"),
            (
                {
                    "from": "Mail Delivery Subsystem <mailer-daemon@googlemail.com>",
                    "x-failed-recipients": "lead@firm.com",
                    "auto-submitted": "auto-replied",
                },
                "bounced",
            ),
            (
                {
                    "from": "postmaster@firm.com",
                    "subject": "Delivery Status Notification (Delay)",
                    "content-type": "multipart/report; report-type=delivery-status",
                },
                None,
            ),
            ({"from": "Asha <ASHA.RAO@gmail.com>", "subject": "Re: Hello"}, None),
        ],
    )
    def test_kind(self, headers: dict[str, str], kind: str | None) -> None:
        assert classify(headers, own_address=self.OWN) == kind


async def sent_campaign(
    session: AsyncSession,
    database: Database,
    fake_google: FakeGoogle,
    fake_gmail: FakeGmail,
    clock: Clock,
    *,
    recipients: int = 3,
) -> tuple[Campaign, Mailbox]:
    """A campaign with one follow-up whose first emails went out through the fake Gmail."""
    clock.freeze(START - timedelta(hours=1))
    user = await create_user(session, "asha@example.com", balance=100)
    mailbox, _ = await gmail_mailbox(session, fake_google, user, email=GMAIL)
    mailbox.timezone = "Asia/Kolkata"
    people = await make_list(
        session,
        user,
        [
            {"email": f"lead{n}@firm{n}.com", "first_name": f"Lead{n}", "company": f"Firm {n}"}
            for n in range(recipients)
        ],
    )
    first = await make_template(session, user)
    second = await make_template(
        session, user, name="Nudge", body_text="Hi {{ first_name }}, any thoughts?"
    )
    campaign = await campaign_service.create(
        session,
        user=user,
        data=CampaignCreate(
            name="With a follow-up",
            mailbox_id=mailbox.id,
            template_id=first,
            list_id=people.id,
            start_at=START,
            min_gap_seconds=60,
            jitter_seconds=0,
            steps=[StepIn(template_id=second, delay_business_days=2)],
        ),
    )
    await campaign_service.schedule(session, user=user, campaign=campaign)
    await sending.prepare_campaign_emails(database, campaign.id)
    clock.freeze(START)
    for _ in range(recipients + 2):
        await sending.send_due_emails(database)
        clock.advance(timedelta(minutes=1))
    await _store_threads(session, fake_gmail)
    return campaign, mailbox


async def _store_threads(session: AsyncSession, fake_gmail: FakeGmail) -> None:
    # The sender keeps the Gmail thread of what it sent (the draft's thread, which Gmail
    # keeps on sending); copied from the fake here where the sender does not yet.
    threads = {m.id: m.thread_id for m in fake_gmail.sent(GMAIL)}
    for email in await session.scalars(
        select(ScheduledEmail).where(ScheduledEmail.status == EmailStatus.sent)
    ):
        email.thread_id = email.thread_id or threads[str(email.provider_message_id)]
    await session.flush()


def _sent_to(fake_gmail: FakeGmail, address: str) -> StoredMessage:
    return next(m for m in fake_gmail.sent(GMAIL) if address in str(m.parsed["To"]))


async def _followup(session: AsyncSession, address: str) -> ScheduledEmail:
    email = await session.scalar(
        select(ScheduledEmail).where(ScheduledEmail.to_address == address, ScheduledEmail.step == 1)
    )
    assert email is not None
    return email


class TestCheckMailbox:
    async def test_reply_auto_reply_and_bounce_are_recorded_and_stop_what_they_should(
        self,
        session: AsyncSession,
        database: Database,
        gmail_settings: Settings,
        fake_google: FakeGoogle,
        fake_gmail: FakeGmail,
        frozen_clock: Clock,
    ) -> None:
        campaign, mailbox = await sent_campaign(
            session, database, fake_google, fake_gmail, frozen_clock
        )
        assert len(fake_gmail.sent(GMAIL)) == 3
        first = await check_mailbox(session, mailbox)  # no history id yet: thread scan
        assert first.full_scan
        assert first.findings == 0
        balance = await credit_service.get_balance(session, user_id=campaign.user_id)

        fake_gmail.deliver_reply(GMAIL, _sent_to(fake_gmail, "lead0@firm0.com"))
        fake_gmail.deliver_auto_reply(GMAIL, _sent_to(fake_gmail, "lead1@firm1.com"))
        fake_gmail.deliver_bounce(GMAIL, _sent_to(fake_gmail, "lead2@firm2.com"))
        fake_gmail.deliver(GMAIL, b"From: friend@else.com\r\nTo: asha.rao@gmail.com\r\n\r\nhi")
        fake_gmail.calls.clear()
        check = await check_mailbox(session, mailbox)

        assert not check.full_scan
        # one history page, then the headers of the three messages in our threads only
        assert check.calls == ["gmail.users.history.list"] + ["gmail.users.messages.get"] * 3
        assert [name for name, _ in fake_gmail.calls] == check.calls
        assert check.quota_units == 2 + 3 * 5
        events = {
            e.recipient_address: e.kind
            for e in await session.scalars(
                select(EmailEvent).where(EmailEvent.campaign_id == campaign.id)
            )
        }
        assert events == {
            "lead0@firm0.com": EmailEventKind.replied,
            "lead1@firm1.com": EmailEventKind.auto_reply,
            "lead2@firm2.com": EmailEventKind.bounced,
        }
        assert (await _followup(session, "lead0@firm0.com")).status == EmailStatus.cancelled
        assert (await _followup(session, "lead1@firm1.com")).status == EmailStatus.waiting
        assert (await _followup(session, "lead2@firm2.com")).status == EmailStatus.cancelled
        after = await credit_service.get_balance(session, user_id=campaign.user_id)
        assert after == balance + 2  # the two stopped follow-ups, refunded once each
        suppressed = await session.scalar(
            select(Suppression).where(Suppression.value == "lead2@firm2.com")
        )
        assert suppressed is not None
        assert suppressed.reason == "bounced"

        # Nothing new: one call, and reading the same history again records nothing twice.
        fake_gmail.calls.clear()
        again = await check_mailbox(session, mailbox)
        assert again.calls == ["gmail.users.history.list"]
        mailbox.history_id = "1000"  # as if a crash lost the stored id
        replay = await check_mailbox(session, mailbox)
        assert replay.findings == 3
        assert len((await session.scalars(select(EmailEvent))).all()) == 3
        assert await credit_service.get_balance(session, user_id=campaign.user_id) == after

    async def test_an_expired_history_id_falls_back_to_reading_our_threads(
        self,
        session: AsyncSession,
        database: Database,
        gmail_settings: Settings,
        fake_google: FakeGoogle,
        fake_gmail: FakeGmail,
        frozen_clock: Clock,
    ) -> None:
        campaign, mailbox = await sent_campaign(
            session, database, fake_google, fake_gmail, frozen_clock, recipients=2
        )
        await check_mailbox(session, mailbox)
        fake_gmail.deliver_reply(GMAIL, _sent_to(fake_gmail, "lead1@firm1.com"))
        fake_gmail.expire_history(GMAIL)
        fake_gmail.calls.clear()
        check = await check_mailbox(session, mailbox)
        assert check.full_scan
        assert check.calls == [
            "gmail.users.history.list",  # 404
            "gmail.users.getProfile",
            "gmail.users.threads.get",
            "gmail.users.threads.get",
        ]
        assert check.findings == 1
        assert (await _followup(session, "lead1@firm1.com")).status == EmailStatus.cancelled
        assert (await _followup(session, "lead0@firm0.com")).status == EmailStatus.waiting
        assert mailbox.history_id == str(fake_gmail.mailbox(GMAIL).history_id)

    async def test_send_only_gmail_is_not_read(
        self, session: AsyncSession, gmail_settings: Settings, fake_google: FakeGoogle
    ) -> None:
        from outreach.mailbox.inbox import can_read_replies

        user = await create_user(session, "asha@example.com")
        full, _ = await gmail_mailbox(session, fake_google, user, email="a@gmail.com")
        send_only, _ = await gmail_mailbox(
            session, fake_google, user, email="b@gmail.com", mode=MailboxMode.send_only
        )
        assert can_read_replies(full)
        assert not can_read_replies(send_only)


class TestCheckCost:
    async def test_a_full_read_keeps_to_the_check_pace_spread_evenly(
        self,
        session: AsyncSession,
        gmail_settings: Settings,
        fake_google: FakeGoogle,
        fake_gmail: FakeGmail,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        use_settings(gmail_settings.model_copy(update={"inbox_check_units_per_second": 20}))
        user = await create_user(session, "asha@example.com")
        mailbox = await watched_mailbox(session, fake_google, user, GMAIL, threads=3)
        now, spent = [0.0], []

        async def sleep(seconds: float) -> None:
            now[0] += seconds

        pace = QuotaBudget(20, burst=10, monotonic=lambda: now[0], sleep=sleep)
        monkeypatch.setitem(inbox._paces, 20.0, pace)
        real_spend = pace.spend

        async def spend(key: str, units: int) -> float:
            waited = await real_spend(key, units)
            spent.append((round(now[0], 6), units))
            return waited

        monkeypatch.setattr(pace, "spend", spend)
        check = await check_mailbox(session, mailbox)
        assert check.calls == [PROFILE, THREADS_GET, THREADS_GET, THREADS_GET]
        # 20 units a second with room for one threads.get: never a burst of them
        assert spent == [(0.0, 1), (0.05, 10), (0.55, 10), (1.05, 10)]
        assert [name for name, _ in fake_gmail.calls] == check.calls

    async def test_a_history_giving_the_same_page_twice_fails_the_check_rather_than_loop(
        self,
        session: AsyncSession,
        gmail_settings: Settings,
        fake_google: FakeGoogle,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        user = await create_user(session, "asha@example.com")
        mailbox = await watched_mailbox(session, fake_google, user, GMAIL, history_id="1000")
        pages: list[str | None] = []

        async def looping(client: GmailClient, start: str, page_token: str | None = None) -> Any:
            pages.append(page_token)
            return {"history": [], "nextPageToken": "same", "historyId": "2000"}

        monkeypatch.setattr(GmailClient, "list_history", looping)
        with pytest.raises(GmailError, match="twice"):
            await check_mailbox(session, mailbox)
        assert pages == [None, "same"]
        assert mailbox.history_id == "1000"


class TestLongLookups:
    """What arrives from outside may name more threads or Message-IDs than one SQL
    statement binds (32,767 parameters on PostgreSQL): looked up in batches, a long
    history or a bounce with a huge References header is matched like any other."""

    async def test_a_long_history_and_a_long_references_header_still_match(
        self,
        session: AsyncSession,
        database: Database,
        gmail_settings: Settings,
        fake_google: FakeGoogle,
        fake_gmail: FakeGmail,
        frozen_clock: Clock,
    ) -> None:
        campaign, mailbox = await sent_campaign(
            session, database, fake_google, fake_gmail, frozen_clock
        )
        sent = list(
            await session.scalars(
                select(ScheduledEmail)
                .where(ScheduledEmail.campaign_id == campaign.id, ScheduledEmail.step == 0)
                .order_by(ScheduledEmail.to_address)
            )
        )
        ours = {str(e.thread_id) for e in sent}
        strangers = [f"thread{n:05d}" for n in range(40_000)]
        found = await replies.campaign_threads(session, mailbox.id, [*strangers, *ours])
        assert found == ours

        bounced = sent[-1]
        event = InboxMessageEvent(
            mailbox_id=mailbox.id,
            user_id=campaign.user_id,
            kind=EmailEventKind.bounced,
            gmail_message_id="bounce1",
            thread_id="a-thread-of-its-own",
            from_address="mailer-daemon@googlemail.com",
            referenced_message_ids=(
                *(f"<m{n}@elsewhere.example>" for n in range(40_000)),
                str(bounced.rfc822_message_id),
            ),
            failed_recipients=(),
            received_at=START,
            detail="Delivery Status Notification (Failure)",
        )
        matched = await replies._email_for(session, event)
        assert matched is not None
        assert matched.id == bounced.id
