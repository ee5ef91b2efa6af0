"""Mailbox CRUD, SMTP mailboxes against a real local SMTP server, and the file outbox."""

from __future__ import annotations

import uuid
from email import policy
from email.parser import BytesParser
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.config import Environment, Settings
from outreach.kit.db import Database
from outreach.mailbox.mime import OutgoingEmail, build_message
from outreach.mailbox.providers import SendsNotConfirmable
from outreach.mailbox.service import mailbox_service
from outreach.models import Mailbox
from tests.conftest import _started_app, make_client, sign_in
from tests.mailbox.conftest import SMTP_PASSWORD, SMTP_USER, SmtpServer


def _smtp_body(port: int, **changes: object) -> dict[str, object]:
    body: dict[str, object] = {
        "address": "asha@example.com",
        "display_name": "Asha Rao",
        "host": "127.0.0.1",
        "port": port,
        "security": "starttls",
        "username": SMTP_USER,
        "password": SMTP_PASSWORD,
        "timezone": "Asia/Kolkata",
    }
    return {**body, **changes}


async def _count(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(Mailbox)) or 0)


class TestSmtp:
    async def test_login_tested_then_saved_then_sends_over_starttls(
        self, client: httpx.AsyncClient, smtp: SmtpServer, session: AsyncSession
    ) -> None:
        await sign_in(client, "asha@example.com")
        response = await client.post("/v1/mailboxes/smtp", json=_smtp_body(smtp.port))
        assert response.status_code == 201, response.text
        body = response.json()
        assert body["provider"] == "smtp"
        assert body["status"] == "active"
        assert SMTP_PASSWORD not in response.text
        assert "password" not in body
        assert smtp.recorder.logins == [SMTP_USER]  # AUTH only offered after STARTTLS
        mailbox = await session.get_one(Mailbox, uuid.UUID(body["id"]))
        assert SMTP_PASSWORD not in (mailbox.smtp_password_encrypted or "")

        provider = await mailbox_service.provider_for(session, mailbox)
        mime = build_message(
            OutgoingEmail(
                from_address="asha@example.com",
                to_address="hr@example.org",
                subject="Hi",
                text="Hello\n",
            )
        )
        assert await provider.send(mime) == mime.message_id
        (envelope,) = smtp.recorder.messages
        assert envelope.rcpt_tos == ["hr@example.org"]
        received = BytesParser(policy=policy.default).parsebytes(envelope.original_content)
        assert received["Message-ID"] == mime.message_id
        with pytest.raises(SendsNotConfirmable):
            await provider.find_sent(rfc822_message_id=mime.message_id)

    async def test_wrong_password_is_422_and_nothing_stored(
        self, client: httpx.AsyncClient, smtp: SmtpServer, session: AsyncSession
    ) -> None:
        await sign_in(client, "asha@example.com")
        response = await client.post(
            "/v1/mailboxes/smtp", json=_smtp_body(smtp.port, password="wrong")
        )
        assert response.status_code == 422
        assert response.json()["code"] == "smtp_login_failed"
        assert await _count(session) == 0

    async def test_untrusted_certificate_is_refused(
        self,
        client: httpx.AsyncClient,
        smtp: SmtpServer,
        mailbox_settings: Settings,
        database: Database,
    ) -> None:
        settings = mailbox_settings.model_copy(update={"smtp_ca_file": None})
        from outreach.config import use_settings

        use_settings(settings)
        await sign_in(client, "asha@example.com")
        response = await client.post("/v1/mailboxes/smtp", json=_smtp_body(smtp.port))
        assert response.status_code == 422
        assert response.json()["code"] == "smtp_unreachable"

    @pytest.mark.parametrize(
        "host", ["127.0.0.1", "10.1.2.3", "192.168.0.10", "169.254.169.254", "[::1]", "localhost"]
    )
    async def test_internal_hosts_are_refused_outside_development(
        self, mailbox_settings: Settings, database: Database, host: str
    ) -> None:
        from outreach.config import use_settings

        settings = mailbox_settings.model_copy(update={"smtp_allow_private_hosts": None})
        use_settings(settings)
        async for app in _started_app(settings, database):
            async with make_client(app) as client:
                await sign_in(client, "asha@example.com")
                response = await client.post(
                    "/v1/mailboxes/smtp", json=_smtp_body(25, host=host.strip("[]"))
                )
        assert response.status_code == 422, response.text
        assert response.json()["code"] == "smtp_host_not_allowed"
        assert response.json()["errors"][0]["loc"] == ["body", "host"]


class TestOutbox:
    async def test_outbox_writes_eml_files_that_parse(
        self, client: httpx.AsyncClient, session: AsyncSession, mailbox_settings: Settings
    ) -> None:
        await sign_in(client, "asha@example.com")
        response = await client.post("/v1/mailboxes/outbox", json={"address": "asha@example.com"})
        assert response.status_code == 201, response.text
        assert response.json()["provider"] == "outbox"
        mailbox = await session.get_one(Mailbox, uuid.UUID(response.json()["id"]))
        provider = await mailbox_service.provider_for(session, mailbox)
        mime = build_message(
            OutgoingEmail(
                from_address="asha@example.com",
                to_address="hr@example.org",
                subject="Namaste",
                text="Hi\n",
            )
        )
        draft_id = await provider.create_draft(mime)
        assert await provider.find_sent(rfc822_message_id=mime.message_id) is None
        message_id = await provider.send_draft(draft_id)
        assert await provider.find_sent(rfc822_message_id=mime.message_id) == message_id
        folder = Path(mailbox_settings.outbox_path) / str(mailbox.id)
        (eml,) = folder.glob("*.eml")
        parsed = BytesParser(policy=policy.default).parsebytes(eml.read_bytes())
        assert parsed["Subject"] == "Namaste"
        assert parsed["Message-ID"] == mime.message_id
        assert not list((folder / "drafts").glob("*.eml"))

    async def test_outbox_is_refused_in_production_unless_enabled(
        self, mailbox_settings: Settings, database: Database
    ) -> None:
        from outreach.config import use_settings

        settings = mailbox_settings.model_copy(
            update={"allow_outbox_mailboxes": None, "env": Environment.testing}
        )
        use_settings(settings)
        async for app in _started_app(settings, database):
            async with make_client(app) as client:
                await sign_in(client, "asha@example.com")
                response = await client.post(
                    "/v1/mailboxes/outbox", json={"address": "a@example.com"}
                )
        assert response.status_code == 403
        assert response.json()["code"] == "outbox_not_allowed"


class TestCrud:
    async def _outbox(self, client: httpx.AsyncClient, address: str = "asha@example.com") -> str:
        response = await client.post("/v1/mailboxes/outbox", json={"address": address})
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    async def test_list_get_patch_delete(self, client: httpx.AsyncClient) -> None:
        await sign_in(client, "asha@example.com")
        first = await self._outbox(client)
        second = await self._outbox(client, "other@example.com")
        listed = (await client.get("/v1/mailboxes")).json()
        assert [m["id"] for m in listed["items"]] == [second, first]
        assert listed["items"][0]["daily_cap"] == 250
        patched = await client.patch(
            f"/v1/mailboxes/{first}",
            json={
                "daily_cap": 2000,
                "timezone": "Asia/Kolkata",
                "signature": "— Asha",
                "display_name": "Asha R",
            },
        )
        assert patched.status_code == 200, patched.text
        assert (patched.json()["daily_cap"], patched.json()["timezone"]) == (2000, "Asia/Kolkata")
        assert (await client.delete(f"/v1/mailboxes/{first}")).status_code == 204
        assert (await client.get(f"/v1/mailboxes/{first}")).status_code == 404
        again = await self._outbox(client, "other@example.com")
        assert again == second  # same address: updated, not duplicated

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"daily_cap": 0}, "daily_cap"),
            ({"daily_cap": 2001}, "daily_cap"),
            ({"timezone": "IST"}, "timezone"),
            ({"timezone": "Mars/Olympus"}, "timezone"),
            ({"display_name": "A\r\nBcc: x"}, "display_name"),
            # any control character would reach the From header (issue 16, item 8)
            ({"display_name": "Asha\x0bRao"}, "display_name"),
            ({"display_name": "Asha\x85Rao"}, "display_name"),
            ({"display_name": "Asha\u2028Rao"}, "display_name"),
            ({"display_name": "Asha\x7f"}, "display_name"),
            ({"smtp_host": "x"}, "smtp_host"),
        ],
    )
    async def test_bad_patches_are_422_naming_the_field(
        self, client: httpx.AsyncClient, body: dict[str, object], field: str
    ) -> None:
        await sign_in(client, "asha@example.com")
        mailbox_id = await self._outbox(client)
        response = await client.patch(f"/v1/mailboxes/{mailbox_id}", json=body)
        assert response.status_code == 422
        assert response.json()["errors"][0]["loc"][-1] == field

    async def test_a_display_name_with_a_control_character_is_refused_at_create(
        self, client: httpx.AsyncClient
    ) -> None:
        await sign_in(client, "asha@example.com")
        response = await client.post(
            "/v1/mailboxes/outbox",
            json={"address": "asha@example.com", "display_name": "Asha\x0bRao"},
        )
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["loc"][-1] == "display_name"
        assert "U+000B" in response.json()["errors"][0]["message"]

    async def test_another_users_mailbox_is_404(self, app, client: httpx.AsyncClient) -> None:
        await sign_in(client, "asha@example.com")
        mailbox_id = await self._outbox(client)
        async with make_client(app) as mallory:
            await sign_in(mallory, "mallory@example.com")
            assert (await mallory.get(f"/v1/mailboxes/{mailbox_id}")).status_code == 404
            assert (
                await mallory.patch(f"/v1/mailboxes/{mailbox_id}", json={"daily_cap": 5})
            ).status_code == 404
            assert (await mallory.delete(f"/v1/mailboxes/{mailbox_id}")).status_code == 404
            gmail = await mallory.post("/v1/gmail/disconnect", json={"mailbox_id": mailbox_id})
            assert gmail.status_code == 404
            assert (await mallory.get("/v1/mailboxes")).json()["items"] == []

    async def test_onboarding_flag(self, client: httpx.AsyncClient) -> None:
        me = await sign_in(client, "asha@example.com")
        assert me["onboarding"]["flags"]["mailbox_connected"] is False
        await self._outbox(client)
        me = (await client.get("/v1/auth/me")).json()
        assert me["onboarding"]["flags"]["mailbox_connected"] is True
        assert me["mailbox_problems"] == []
