"""Connecting Gmail end to end through the fake Google and the fake Gmail."""

from __future__ import annotations

import uuid
from datetime import timedelta
from email import policy
from email.parser import BytesParser

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.kit.db import Database
from outreach.mailbox.events import (
    MailboxUnavailableEvent,
    on_mailbox_unavailable,
    remove_mailbox_unavailable_handler,
)
from outreach.mailbox.mime import OutgoingEmail, build_message
from outreach.mailbox.providers import MailboxRevoked
from outreach.mailbox.service import mailbox_service
from outreach.models import AuditLog, Mailbox, MailboxStatus
from tests.conftest import sign_in
from tests.fakes.gmail import FakeGmail
from tests.fakes.google import FakeGoogle
from tests.mailbox.conftest import GMAIL_SEND, connect_gmail, redirect_query


@pytest.fixture
def unavailable_events() -> list[MailboxUnavailableEvent]:
    events: list[MailboxUnavailableEvent] = []

    async def record(session: AsyncSession, event: MailboxUnavailableEvent) -> None:
        events.append(event)

    on_mailbox_unavailable(record)
    yield events
    remove_mailbox_unavailable_handler(record)


async def test_connect_verify_draft_send_then_revocation(
    client: httpx.AsyncClient,
    fake_google: FakeGoogle,
    fake_gmail: FakeGmail,
    database: Database,
    unavailable_events: list[MailboxUnavailableEvent],
) -> None:
    await sign_in(client, "asha@example.com")
    result = redirect_query(await connect_gmail(client, fake_google, email="asha.rao@gmail.com"))
    assert result["status"] == "connected"
    mailbox_id = result["mailbox_id"]

    verified = await client.post("/v1/gmail/verify", json={"mailbox_id": mailbox_id})
    assert verified.status_code == 200, verified.text
    body = verified.json()
    assert body["status"] == "active"
    assert body["address"] == "asha.rao@gmail.com"
    assert body["provider"] == "gmail"
    assert "refresh_token" not in verified.text
    assert "encrypted" not in verified.text

    email = OutgoingEmail(
        from_address="asha.rao@gmail.com",
        from_name="Asha Rao",
        to_address="recruiter@example.org",
        to_name="Ravi Kumar",
        subject="Backend role — résumé attached",
        text="Hello Ravi,\nplease find my résumé attached.\n",
        html="<p>Hello Ravi,</p><p>please find my résumé attached.</p>",
        list_unsubscribe=("https://outreach.test/u/token123",),
        one_click_unsubscribe=True,
    )
    mime = build_message(email)
    async with database.session() as session:
        mailbox = await session.get_one(Mailbox, uuid.UUID(mailbox_id))
        provider = await mailbox_service.provider_for(session, mailbox)
        draft_id = await provider.create_draft(mime)
        message_id = await provider.send_draft(draft_id)

    sent = fake_gmail.sent("asha.rao@gmail.com")
    assert [m.id for m in sent] == [message_id]
    assert fake_gmail.mailbox("asha.rao@gmail.com").drafts == {}
    parsed = BytesParser(policy=policy.default).parsebytes(sent[0].raw)
    for header in ("From", "To", "Subject", "Message-ID", "Date", "List-Unsubscribe"):
        assert str(parsed[header]) == mime.headers()[header], header
    assert str(parsed["Subject"]) == "Backend role — résumé attached"
    text = parsed.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert text == "Hello Ravi,\nplease find my résumé attached.\n"
    assert "résumé" in parsed.get_body(("html",)).get_content()

    # The user removes our access in their Google account.
    fake_google.oauth.revoke_user("asha.rao@gmail.com")
    async with database.session() as session:
        mailbox = await session.get_one(Mailbox, uuid.UUID(mailbox_id))
        provider = await mailbox_service.provider_for(session, mailbox)
        with pytest.raises(MailboxRevoked):
            await provider.create_draft(build_message(email))
    assert [(str(e.mailbox_id), e.status) for e in unavailable_events] == [
        (mailbox_id, MailboxStatus.revoked)
    ]
    me = (await client.get("/v1/auth/me")).json()
    assert me["onboarding"]["flags"]["mailbox_connected"] is False
    assert [p["mailbox_id"] for p in me["mailbox_problems"]] == [mailbox_id]
    assert me["mailbox_problems"][0]["status"] == "revoked"
    async with database.session() as session:
        actions = (await session.scalars(select(AuditLog.action))).all()
    assert "mailbox.connected" in actions
    assert "mailbox.revoked" in actions


async def _mailbox_count(database: Database) -> int:
    async with database.session() as session:
        return int(await session.scalar(select(func.count()).select_from(Mailbox)) or 0)


class TestCallbackRefusals:
    async def test_denied_consent_redirects_with_access_denied(
        self, client: httpx.AsyncClient, fake_google: FakeGoogle, database: Database
    ) -> None:
        await sign_in(client, "asha@example.com")
        fake_google.oauth.consent_as(deny=True)
        start = await client.get("/v1/gmail/connect")
        async with httpx.AsyncClient() as browser:
            consent = await browser.get(start.json()["authorization_url"])
        response = await client.get(consent.headers["location"].removeprefix("http://testserver"))
        assert redirect_query(response) == {"error": "access_denied"}
        assert await _mailbox_count(database) == 0
        assert fake_google.oauth.code_exchanges == 0

    async def test_tampered_state(
        self, client: httpx.AsyncClient, fake_google: FakeGoogle, database: Database
    ) -> None:
        await sign_in(client, "asha@example.com")
        await client.get("/v1/gmail/connect")
        response = await client.get(
            "/v1/gmail/callback", params={"state": "eyJ1IjoieCJ9.forged", "code": "4/x"}
        )
        assert redirect_query(response) == {"error": "invalid_state"}
        assert await _mailbox_count(database) == 0

    async def test_expired_state(
        self, client: httpx.AsyncClient, fake_google: FakeGoogle, frozen_clock, database: Database
    ) -> None:
        await sign_in(client, "asha@example.com")
        start = await client.get("/v1/gmail/connect")
        async with httpx.AsyncClient() as browser:
            consent = await browser.get(start.json()["authorization_url"])
        frozen_clock.advance(timedelta(minutes=11))
        response = await client.get(consent.headers["location"].removeprefix("http://testserver"))
        assert redirect_query(response) == {"error": "state_expired"}
        assert fake_google.oauth.code_exchanges == 0

    async def test_another_users_state_is_refused(
        self, app, client: httpx.AsyncClient, fake_google: FakeGoogle, database: Database
    ) -> None:
        from tests.conftest import make_client

        await sign_in(client, "asha@example.com")
        start = await client.get("/v1/gmail/connect")
        async with httpx.AsyncClient() as browser:
            consent = await browser.get(start.json()["authorization_url"])
        callback = consent.headers["location"].removeprefix("http://testserver")
        async with make_client(app) as mallory:
            await sign_in(mallory, "mallory@example.com")
            # Without Asha's cookie: not this browser's attempt.
            assert redirect_query(await mallory.get(callback)) == {"error": "invalid_state"}
            # Even with Asha's cookie copied over: not this user's state.
            cookie = client.cookies.get("outreach_gmail_oauth", path="/v1/gmail/callback")
            mallory.cookies.set("outreach_gmail_oauth", cookie, path="/v1/gmail/callback")
            assert redirect_query(await mallory.get(callback)) == {"error": "oauth_failed"}
        assert await _mailbox_count(database) == 0
        assert fake_google.oauth.code_exchanges == 0

    async def test_replayed_code_is_refused(
        self, client: httpx.AsyncClient, fake_google: FakeGoogle, database: Database
    ) -> None:
        await sign_in(client, "asha@example.com")
        start = await client.get("/v1/gmail/connect")
        cookie = client.cookies.get("outreach_gmail_oauth", path="/v1/gmail/callback")
        async with httpx.AsyncClient() as browser:
            consent = await browser.get(start.json()["authorization_url"])
        callback = consent.headers["location"].removeprefix("http://testserver")
        assert redirect_query(await client.get(callback))["status"] == "connected"
        # The cookie is gone after use, so a replay fails before reaching Google...
        assert redirect_query(await client.get(callback)) == {"error": "invalid_state"}
        # ...and with the cookie put back, Google refuses the used code.
        client.cookies.set("outreach_gmail_oauth", cookie, path="/v1/gmail/callback")
        assert redirect_query(await client.get(callback)) == {"error": "code_rejected"}
        assert await _mailbox_count(database) == 1

    async def test_callback_without_code(
        self, client: httpx.AsyncClient, fake_google: FakeGoogle
    ) -> None:
        await sign_in(client, "asha@example.com")
        start = await client.get("/v1/gmail/connect")
        state = httpx.URL(start.json()["authorization_url"]).params["state"]
        response = await client.get("/v1/gmail/callback", params={"state": state})
        assert redirect_query(response) == {"error": "missing_code"}

    async def test_callback_when_signed_out(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/v1/gmail/callback", params={"state": "x.y", "code": "c"})
        assert redirect_query(response) == {"error": "invalid_state"}

    async def test_missing_scope_stores_nothing_and_gives_the_grant_back(
        self, client: httpx.AsyncClient, fake_google: FakeGoogle, database: Database
    ) -> None:
        await sign_in(client, "asha@example.com")
        partial = ["openid", "email", "https://www.googleapis.com/auth/gmail.compose"]
        response = await connect_gmail(client, fake_google, scopes=partial)
        assert redirect_query(response) == {"error": "missing_scopes"}
        assert await _mailbox_count(database) == 0
        assert len(fake_google.oauth.revocations) == 1
        assert all(grant.revoked for grant in fake_google.oauth.grants.values())

    async def test_default_frontend_is_the_api_docs(
        self, mailbox_settings, database: Database, fake_google: FakeGoogle
    ) -> None:
        from tests.conftest import _started_app, make_client

        settings = mailbox_settings.model_copy(update={"frontend_url": None})
        async for app in _started_app(settings, database):
            async with make_client(app) as client:
                await sign_in(client, "asha@example.com")
                response = await connect_gmail(client, fake_google, scopes=["openid"])
        assert response.status_code == 303
        assert response.headers["location"] == "http://testserver/mailboxes?error=missing_scopes"


class TestConnectModes:
    async def test_send_only_takes_the_address_from_the_id_token(
        self, client: httpx.AsyncClient, fake_google: FakeGoogle, fake_gmail: FakeGmail
    ) -> None:
        await sign_in(client, "asha@example.com")
        start = await client.get("/v1/gmail/connect", params={"mode": "send_only"})
        assert start.json()["scopes"] == ["openid", "email", GMAIL_SEND]
        result = redirect_query(
            await connect_gmail(client, fake_google, mode="send_only", email="sender@gmail.com")
        )
        assert fake_gmail.called("gmail.users.getProfile") == 0  # not allowed with gmail.send
        mailbox = (await client.get(f"/v1/mailboxes/{result['mailbox_id']}")).json()
        assert (mailbox["address"], mailbox["mode"]) == ("sender@gmail.com", "send_only")
        refreshes = fake_google.oauth.refresh_calls
        verified = await client.post("/v1/gmail/verify", json={"mailbox_id": result["mailbox_id"]})
        assert verified.json()["status"] == "active"
        assert fake_google.oauth.refresh_calls == refreshes + 1
        assert fake_gmail.called("gmail.users.getProfile") == 0

    async def test_reconnecting_updates_the_same_mailbox(
        self, client: httpx.AsyncClient, fake_google: FakeGoogle, database: Database
    ) -> None:
        await sign_in(client, "asha@example.com")
        first = redirect_query(await connect_gmail(client, fake_google))
        await client.post("/v1/gmail/disconnect", json={"mailbox_id": first["mailbox_id"]})
        second = redirect_query(await connect_gmail(client, fake_google))
        assert second["mailbox_id"] == first["mailbox_id"]
        assert await _mailbox_count(database) == 1
        assert (await client.get(f"/v1/mailboxes/{first['mailbox_id']}")).json()[
            "status"
        ] == "active"

    async def test_connect_needs_the_client_secret(
        self, mailbox_settings, database: Database
    ) -> None:
        from tests.conftest import _started_app, make_client

        settings = mailbox_settings.model_copy(update={"gmail_client_secret": None})
        from outreach.config import use_settings

        use_settings(settings)
        async for app in _started_app(settings, database):
            async with make_client(app) as client:
                await sign_in(client, "asha@example.com")
                response = await client.get("/v1/gmail/connect")
        assert response.status_code == 503
        assert response.json()["code"] == "gmail_not_configured"


async def test_disconnect_revokes_at_google_and_forgets_tokens(
    client: httpx.AsyncClient,
    fake_google: FakeGoogle,
    database: Database,
    unavailable_events: list[MailboxUnavailableEvent],
) -> None:
    await sign_in(client, "asha@example.com")
    mailbox_id = redirect_query(await connect_gmail(client, fake_google))["mailbox_id"]
    response = await client.post("/v1/gmail/disconnect", json={"mailbox_id": mailbox_id})
    assert response.status_code == 200
    assert response.json()["status"] == "revoked"
    assert all(grant.revoked for grant in fake_google.oauth.grants.values())
    async with database.session() as session:
        mailbox = await session.get_one(Mailbox, uuid.UUID(mailbox_id))
        assert mailbox.refresh_token_encrypted is None
        assert mailbox.access_token_encrypted is None
    assert [e.reason for e in unavailable_events] == ["disconnected by the user"]
