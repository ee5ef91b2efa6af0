"""POST /v1/auth/google end to end, against the fake Google over real HTTP."""

from datetime import timedelta

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.models import AuditLog, LedgerEntry, User
from tests.fakes.google import FakeGoogle


async def google_sign_in(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/v1/auth/google", json={"credential": token})


async def test_first_sign_in_creates_the_user_once(
    client: httpx.AsyncClient, session: AsyncSession, fake_google: FakeGoogle
) -> None:
    token = fake_google.make_id_token(sub="g-1", email="Asha@Example.com", name="Asha")
    first = await google_sign_in(client, token)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["new_user"] is True
    assert body["email"] == "asha@example.com"
    assert body["credit_balance"] == 20
    second = await google_sign_in(
        client, fake_google.make_id_token(sub="g-1", email="asha@example.com")
    )
    assert second.json()["new_user"] is False
    assert await session.scalar(select(func.count()).select_from(User)) == 1
    grants = await session.scalar(
        select(func.count()).select_from(LedgerEntry).where(LedgerEntry.reason == "signup_grant")
    )
    assert grants == 1
    actions = (await session.scalars(select(AuditLog.action))).all()
    assert sorted(actions) == ["auth.login", "auth.login", "auth.signup"]
    me = await client.get("/v1/auth/me")
    assert me.json()["email"] == "asha@example.com"


async def test_email_change_at_google_is_followed(
    client: httpx.AsyncClient, session: AsyncSession, fake_google: FakeGoogle
) -> None:
    await google_sign_in(client, fake_google.make_id_token(sub="g-2", email="old@example.com"))
    response = await google_sign_in(
        client, fake_google.make_id_token(sub="g-2", email="new@example.com")
    )
    assert response.json()["email"] == "new@example.com"
    emails = (await session.scalars(select(User.email))).all()
    assert emails == ["new@example.com"]


async def test_dev_account_is_linked_to_google_by_email(
    client: httpx.AsyncClient, session: AsyncSession, fake_google: FakeGoogle
) -> None:
    dev = await client.post("/v1/auth/dev-login", json={"email": "same@example.com"})
    response = await google_sign_in(
        client, fake_google.make_id_token(sub="g-3", email="same@example.com")
    )
    assert response.json()["id"] == dev.json()["id"]
    assert response.json()["new_user"] is False


class TestRefusedTokens:
    async def assert_401(self, client: httpx.AsyncClient, token: str) -> None:
        response = await google_sign_in(client, token)
        assert response.status_code == 401, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] == "invalid_google_token"
        assert "outreach_session" not in response.cookies

    async def test_expired(self, client: httpx.AsyncClient, fake_google: FakeGoogle) -> None:
        await self.assert_401(client, fake_google.make_id_token(expires_in=timedelta(hours=-1)))

    async def test_wrong_audience(self, client: httpx.AsyncClient, fake_google: FakeGoogle) -> None:
        await self.assert_401(client, fake_google.make_id_token(aud="someone-else"))

    async def test_wrong_issuer(self, client: httpx.AsyncClient, fake_google: FakeGoogle) -> None:
        await self.assert_401(client, fake_google.make_id_token(iss="https://evil.example"))

    async def test_unsigned(self, client: httpx.AsyncClient, fake_google: FakeGoogle) -> None:
        await self.assert_401(client, fake_google.make_unsigned_token())

    async def test_tampered(self, client: httpx.AsyncClient, fake_google: FakeGoogle) -> None:
        token = fake_google.tamper(fake_google.make_id_token(), email="admin@example.com")
        await self.assert_401(client, token)

    async def test_unknown_kid(self, client: httpx.AsyncClient, fake_google: FakeGoogle) -> None:
        await self.assert_401(client, fake_google.make_token_with_unknown_kid())

    async def test_unverified_email(
        self, client: httpx.AsyncClient, fake_google: FakeGoogle
    ) -> None:
        await self.assert_401(client, fake_google.make_id_token(email_verified=False))

    async def test_nothing_is_created(
        self, client: httpx.AsyncClient, session: AsyncSession, fake_google: FakeGoogle
    ) -> None:
        await google_sign_in(client, fake_google.make_id_token(expires_in=timedelta(hours=-1)))
        assert await session.scalar(select(func.count()).select_from(User)) == 0


async def test_google_down_is_503(client: httpx.AsyncClient, fake_google: FakeGoogle) -> None:
    fake_google.jwks_status = 500
    response = await google_sign_in(client, fake_google.make_id_token())
    assert response.status_code == 503
    assert response.json()["code"] == "google_unavailable"
