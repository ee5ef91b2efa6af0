"""The Gmail client and provider against the fake Gmail (which checks the discovery document)."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.kit.clock import Clock
from outreach.mailbox.gmail import (
    GmailClient,
    GmailDailyLimitExceeded,
    GmailRateLimited,
    QuotaBudget,
)
from outreach.mailbox.mime import EncodedMessage, OutgoingEmail, build_message
from outreach.mailbox.providers import DraftsNotSupported, SendOutcomeUnknown, SendsNotConfirmable
from outreach.mailbox.service import mailbox_service
from outreach.models import MailboxMode
from tests.conftest import create_user
from tests.fakes.gmail import FakeGmail
from tests.fakes.google import FakeGoogle
from tests.mailbox.conftest import gmail_mailbox

ADDRESS = "asha.rao@gmail.com"


def _mime(subject: str = "Hello") -> EncodedMessage:
    return build_message(
        OutgoingEmail(
            from_address=ADDRESS, to_address="hr@example.org", subject=subject, text="Hi\n"
        )
    )


async def _provider(session: AsyncSession, fake_google: FakeGoogle, mode=MailboxMode.full):  # type: ignore[no-untyped-def]
    user = await create_user(session, "asha@example.com")
    mailbox, grant = await gmail_mailbox(session, fake_google, user, mode=mode)
    return mailbox, await mailbox_service.provider_for(session, mailbox)


def _client(
    fake_google: FakeGoogle, fake_gmail: FakeGmail, token: str, sleeps: list[float]
) -> GmailClient:
    async def access_token(rejected: str | None) -> str:
        return token

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    return GmailClient(
        http=httpx.AsyncClient(),
        base_url=fake_gmail.url,
        access_token=access_token,
        budget=QuotaBudget(1_000_000),
        budget_key="test",
        max_retries=3,
        retry_base_seconds=0.001,
        sleep=sleep,
    )


def _token(fake_google: FakeGoogle, scopes: list[str]) -> str:
    grant = fake_google.oauth.issue_grant(email=ADDRESS, scopes=scopes)
    return fake_google.oauth.issue_access_token(grant)


COMPOSE_METADATA = [
    "https://www.googleapis.com/auth/gmail.compose",
    "https://www.googleapis.com/auth/gmail.metadata",
]


class TestRetries:
    async def test_reads_retry_on_429_and_honour_retry_after(
        self, fake_google: FakeGoogle, fake_gmail: FakeGmail
    ) -> None:
        sleeps: list[float] = []
        client = _client(fake_google, fake_gmail, _token(fake_google, COMPOSE_METADATA), sleeps)
        fake_gmail.fail("gmail.users.getProfile", status=429, retry_after=7)
        fake_gmail.fail("gmail.users.getProfile", status=503)
        fake_gmail.fail("gmail.users.getProfile", status=403, reason="userRateLimitExceeded")
        profile = await client.get_profile()
        assert profile["emailAddress"] == ADDRESS
        assert fake_gmail.called("gmail.users.getProfile") == 4
        assert sleeps[0] == 7.0  # Retry-After wins over the computed backoff
        assert len(sleeps) == 3

    async def test_gives_up_after_the_last_retry(
        self, fake_google: FakeGoogle, fake_gmail: FakeGmail
    ) -> None:
        sleeps: list[float] = []
        client = _client(fake_google, fake_gmail, _token(fake_google, COMPOSE_METADATA), sleeps)
        fake_gmail.fail("gmail.users.messages.list", status=429, times=10)
        with pytest.raises(GmailRateLimited):
            await client.list_sent()
        assert fake_gmail.called("gmail.users.messages.list") == 4

    async def test_a_5xx_on_a_send_is_not_retried(
        self, fake_google: FakeGoogle, fake_gmail: FakeGmail
    ) -> None:
        sleeps: list[float] = []
        client = _client(fake_google, fake_gmail, _token(fake_google, COMPOSE_METADATA), sleeps)
        fake_gmail.fail("gmail.users.messages.send", status=500, apply=True)
        with pytest.raises(SendOutcomeUnknown):
            await client.send_message(_mime().gmail_raw)
        assert fake_gmail.called("gmail.users.messages.send") == 1
        assert len(fake_gmail.sent(ADDRESS)) == 1  # it did go out: hence no blind retry

    async def test_a_429_on_a_send_is_retried(
        self, fake_google: FakeGoogle, fake_gmail: FakeGmail
    ) -> None:
        sleeps: list[float] = []
        client = _client(fake_google, fake_gmail, _token(fake_google, COMPOSE_METADATA), sleeps)
        fake_gmail.fail("gmail.users.messages.send", status=429, retry_after=0)
        await client.send_message(_mime().gmail_raw)
        assert len(fake_gmail.sent(ADDRESS)) == 1

    async def test_a_slow_send_is_an_unknown_outcome(
        self, fake_google: FakeGoogle, fake_gmail: FakeGmail
    ) -> None:
        sleeps: list[float] = []
        client = _client(fake_google, fake_gmail, _token(fake_google, COMPOSE_METADATA), sleeps)
        client.timeout = 0.2
        fake_gmail.delay("gmail.users.messages.send", 1.0)
        with pytest.raises(SendOutcomeUnknown):
            await client.send_message(_mime().gmail_raw)
        assert fake_gmail.called("gmail.users.messages.send") == 1


class TestFakeGmailChecksRequests:
    async def test_scope_must_be_listed_for_the_method(
        self, fake_google: FakeGoogle, fake_gmail: FakeGmail
    ) -> None:
        send_only = _token(fake_google, ["https://www.googleapis.com/auth/gmail.send"])
        async with httpx.AsyncClient(base_url=fake_gmail.url) as http:
            headers = {"Authorization": f"Bearer {send_only}"}
            profile = await http.get("/gmail/v1/users/me/profile", headers=headers)
        assert profile.status_code == 403
        assert profile.json()["error"]["errors"][0]["reason"] == "insufficientPermissions"

    async def test_metadata_scope_refuses_q_and_full_format_even_beside_broader_scopes(
        self, fake_google: FakeGoogle, fake_gmail: FakeGmail
    ) -> None:
        token = _token(
            fake_google, [*COMPOSE_METADATA, "https://www.googleapis.com/auth/gmail.readonly"]
        )
        async with httpx.AsyncClient(base_url=fake_gmail.url) as http:
            headers = {"Authorization": f"Bearer {token}"}
            q = await http.get(
                "/gmail/v1/users/me/messages", params={"q": "rfc822msgid:x"}, headers=headers
            )
            full = await http.get("/gmail/v1/users/me/drafts/r1", headers=headers)  # default full
        assert q.status_code == 403
        assert "'q'" in q.json()["error"]["message"]
        assert full.status_code == 403
        assert "FULL" in full.json()["error"]["message"]

    async def test_unknown_parameters_and_body_fields_are_refused(
        self, fake_google: FakeGoogle, fake_gmail: FakeGmail
    ) -> None:
        token = _token(fake_google, COMPOSE_METADATA)
        async with httpx.AsyncClient(base_url=fake_gmail.url) as http:
            headers = {"Authorization": f"Bearer {token}"}
            param = await http.get(
                "/gmail/v1/users/me/messages", params={"label": "SENT"}, headers=headers
            )
            field = await http.post(
                "/gmail/v1/users/me/drafts", json={"message": {"rawr": "x"}}, headers=headers
            )
            kind = await http.get(
                "/gmail/v1/users/me/messages", params={"maxResults": "ten"}, headers=headers
            )
            no_id = await http.post("/gmail/v1/users/me/drafts/send", json={}, headers=headers)
            anonymous = await http.get("/gmail/v1/users/me/profile")
        assert param.status_code == 400
        assert "Unknown name" in param.json()["error"]["message"]
        assert field.status_code == 400
        assert '"rawr"' in field.json()["error"]["message"]
        assert kind.status_code == 400
        assert no_id.status_code == 400
        assert anonymous.status_code == 401


class TestGmailProvider:
    async def test_reconcile_a_send_that_went_out(
        self, session: AsyncSession, fake_google: FakeGoogle, fake_gmail: FakeGmail
    ) -> None:
        _, provider = await _provider(session, fake_google)
        for subject in ("earlier 1", "earlier 2"):
            await provider.send(_mime(subject))
        mime = _mime("the one")
        draft_id = await provider.create_draft(mime)
        fake_gmail.fail("gmail.users.drafts.send", status=500, apply=True)
        with pytest.raises(SendOutcomeUnknown):
            await provider.send_draft(draft_id)
        found = await provider.find_sent(rfc822_message_id=mime.message_id, draft_id=draft_id)
        # The message found is the one carrying our Message-ID (checked by id, not by
        # position: a message from elsewhere may land in the same fake mailbox).
        ours = [m.id for m in fake_gmail.sent(ADDRESS) if m.parsed["Message-ID"] == mime.message_id]
        assert found is not None
        assert [found] == ours
        # Only calls gmail.metadata allows: no q, format=metadata.
        for name, params in fake_gmail.calls:
            assert "q" not in params
            if name == "gmail.users.messages.get":
                assert params["format"] == ["metadata"]

    async def test_reconcile_matches_gmails_rewritten_message_id(
        self, session: AsyncSession, fake_google: FakeGoogle, fake_gmail: FakeGmail
    ) -> None:
        _, provider = await _provider(session, fake_google)
        fake_gmail.rewrite_message_id = True
        mime = _mime()
        await provider.send(mime)
        assert await provider.find_sent(rfc822_message_id=mime.message_id) is not None
        # A sent draft is found by its thread too, whatever Gmail did to the header.
        draft_mime = _mime("drafted")
        draft_id = await provider.create_draft(draft_mime)
        thread_id = provider.last_thread_id
        sent_id = await provider.send_draft(draft_id)
        found = await provider.find_sent(
            rfc822_message_id="<not-what-gmail-kept@x>", draft_id=draft_id, thread_id=thread_id
        )
        assert found == sent_id

    async def test_reconcile_a_send_that_did_not_happen(
        self, session: AsyncSession, fake_google: FakeGoogle, fake_gmail: FakeGmail
    ) -> None:
        _, provider = await _provider(session, fake_google)
        await provider.send(_mime("unrelated"))
        mime = _mime()
        draft_id = await provider.create_draft(mime)
        # The draft still exists: not sent, and no need to scan SENT.
        assert (
            await provider.find_sent(rfc822_message_id=mime.message_id, draft_id=draft_id) is None
        )
        assert fake_gmail.called("gmail.users.messages.list") == 0
        # Deleted by the user, never sent: not among SENT either.
        await provider.delete_draft(draft_id)
        assert (
            await provider.find_sent(rfc822_message_id=mime.message_id, draft_id=draft_id) is None
        )

    async def test_send_only_sends_but_cannot_draft_or_confirm(
        self, session: AsyncSession, fake_google: FakeGoogle, fake_gmail: FakeGmail
    ) -> None:
        _, provider = await _provider(session, fake_google, MailboxMode.send_only)
        message_id = await provider.send(_mime())
        assert [m.id for m in fake_gmail.sent(ADDRESS)] == [message_id]
        with pytest.raises(DraftsNotSupported):
            await provider.create_draft(_mime())
        with pytest.raises(SendsNotConfirmable):
            await provider.find_sent(rfc822_message_id="<x@y>")

    async def test_daily_limit_defers_the_mailbox_to_its_next_day(
        self,
        session: AsyncSession,
        fake_google: FakeGoogle,
        fake_gmail: FakeGmail,
        frozen_clock: Clock,
    ) -> None:
        mailbox, provider = await _provider(session, fake_google)
        mailbox.timezone = "Asia/Kolkata"  # 09:00 UTC is 14:30 there
        fake_gmail.fail("gmail.users.messages.send", status=403, reason="dailyLimitExceeded")
        with pytest.raises(GmailDailyLimitExceeded) as raised:
            await provider.send(_mime())
        assert mailbox.sending_deferred_until == frozen_clock.now().replace(hour=18, minute=30)
        assert raised.value.extra["retry_at"] == "2026-11-25T18:30:00+00:00"
        assert fake_gmail.called("gmail.users.messages.send") == 1

    async def test_an_expired_access_token_is_refreshed_once(
        self, session: AsyncSession, fake_google: FakeGoogle, fake_gmail: FakeGmail
    ) -> None:
        _, provider = await _provider(session, fake_google)
        fake_google.oauth.expire_access_tokens()  # Gmail refuses it; our copy looks fresh
        await provider.verify()
        assert fake_google.oauth.refresh_calls == 1
        await provider.verify()
        assert fake_google.oauth.refresh_calls == 1


class TestQuotaBudget:
    async def test_waits_exactly_as_long_as_the_units_need(self) -> None:
        now = [100.0]
        sleeps: list[float] = []

        async def sleep(seconds: float) -> None:
            sleeps.append(seconds)
            now[0] += seconds

        budget = QuotaBudget(250, monotonic=lambda: now[0], sleep=sleep)
        assert await budget.spend("m", 100) == 0  # a full bucket
        assert await budget.spend("m", 100) == 0
        assert await budget.spend("m", 100) == pytest.approx(50 / 250)
        assert await budget.spend("other", 250) == 0  # buckets are per mailbox
        now[0] += 1.0  # a second later the bucket is full again
        assert await budget.spend("m", 250) == 0
        assert sleeps == [pytest.approx(0.2)]

    async def test_a_small_burst_spaces_calls_by_their_cost_even_after_a_pause(self) -> None:
        now = [0.0]

        async def sleep(seconds: float) -> None:
            now[0] += seconds

        budget = QuotaBudget(100, burst=10, monotonic=lambda: now[0], sleep=sleep)
        assert await budget.spend("m", 10) == 0
        assert await budget.spend("m", 10) == pytest.approx(0.1)
        now[0] += 5.0  # idle: the bucket refills to its burst, not to a second's worth
        assert await budget.spend("m", 10) == 0
        assert await budget.spend("m", 10) == pytest.approx(0.1)


async def test_a_401_after_a_fresh_token_marks_the_mailbox_revoked(
    session: AsyncSession, fake_google: FakeGoogle, fake_gmail: FakeGmail
) -> None:
    from outreach.mailbox.providers import MailboxRevoked
    from outreach.models import MailboxStatus

    mailbox, provider = await _provider(session, fake_google)
    fake_gmail.fail("gmail.users.drafts.create", status=401, times=2)
    with pytest.raises(MailboxRevoked):
        await provider.create_draft(_mime())
    assert fake_google.oauth.refresh_calls == 1  # one refresh, then Gmail still said no
    assert mailbox.status == MailboxStatus.revoked
    assert mailbox.refresh_token_encrypted is None
