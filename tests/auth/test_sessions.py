"""Sessions, CSRF, dev login and roles, through the HTTP API."""

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.config import Environment, Settings
from outreach.kit.clock import Clock
from outreach.kit.db import Database
from outreach.models import AuditLog, LedgerEntry, User, UserSession
from tests.conftest import make_client, sign_in


class TestDevLogin:
    async def test_first_login_creates_user_with_signup_credits(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        body = await sign_in(client, "Ada@Example.com", "Ada")
        assert body["email"] == "ada@example.com"
        assert body["new_user"] is True
        assert body["credit_balance"] == 20
        assert body["role"] == "user"
        assert len(body["referral_code"]) == 10
        entries = (await session.scalars(select(LedgerEntry))).all()
        assert [(e.delta, e.reason) for e in entries] == [(20, "signup_grant")]

    async def test_second_login_grants_nothing_more(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        await sign_in(client, "ada@example.com")
        again = await sign_in(client, "ada@example.com")
        assert again["new_user"] is False
        assert again["credit_balance"] == 20
        actions = (
            await session.scalars(select(AuditLog.action).order_by(AuditLog.created_at))
        ).all()
        assert actions.count("auth.signup") == 1
        assert actions.count("auth.login") == 2

    async def test_new_session_id_on_every_login(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        await sign_in(client, "ada@example.com")
        first = client.cookies["outreach_session"]
        await sign_in(client, "ada@example.com")
        second = client.cookies["outreach_session"]
        assert first != second
        # The planted/old session is gone, not merely shadowed.
        assert await session.scalar(select(func.count()).select_from(UserSession)) == 1

    async def test_cookies_are_httponly_and_lax(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/v1/auth/dev-login", json={"email": "a@example.com"})
        cookies = response.headers.get_list("set-cookie")
        session_cookie = next(c for c in cookies if c.startswith("outreach_session="))
        csrf_cookie = next(c for c in cookies if c.startswith("outreach_csrf="))
        assert "HttpOnly" in session_cookie
        assert "SameSite=lax" in session_cookie
        assert "HttpOnly" not in csrf_cookie

    async def test_invalid_email_is_422(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/v1/auth/dev-login", json={"email": "not-an-email"})
        assert response.status_code == 422
        assert response.json()["errors"][0]["loc"] == ["body", "email"]


async def _app(settings: Settings, database: Database) -> AsyncIterator[FastAPI]:
    from outreach.app import create_app

    app = create_app(settings, database=database)
    async with app.router.lifespan_context(app):
        yield app


async def test_dev_login_is_absent_in_production(settings: Settings, database: Database) -> None:
    production = settings.model_copy(
        update={
            "env": Environment.production,
            "enable_dev_login": None,
            "allow_sqlite_in_production": True,
            "base_url": "https://outreach.example",
        }
    )
    async for app in _app(production, database):
        async with make_client(app) as client:
            response = await client.post("/v1/auth/dev-login", json={"email": "a@example.com"})
            assert response.status_code == 404
        assert "/v1/auth/dev-login" not in app.openapi()["paths"]


class TestSessions:
    async def test_me_needs_a_session(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/v1/auth/me")
        assert response.status_code == 401
        assert response.json()["code"] == "not_authenticated"

    async def test_me_returns_the_user(self, client: httpx.AsyncClient) -> None:
        await sign_in(client, "ada@example.com", "Ada Lovelace")
        me = (await client.get("/v1/auth/me")).json()
        assert me["email"] == "ada@example.com"
        assert me["name"] == "Ada Lovelace"
        assert me["credit_balance"] == 20
        onboarding = me["onboarding"]
        assert (onboarding["has_paid"], onboarding["referral_applied"]) == (False, False)
        # Other domains add flags (mailbox_connected, …); a new user has done none of it.
        assert not any(onboarding["flags"].values())

    async def test_logout_kills_the_session_for_good(self, client: httpx.AsyncClient) -> None:
        await sign_in(client, "ada@example.com")
        cookie = client.cookies["outreach_session"]
        assert (await client.post("/v1/auth/logout")).status_code == 204
        client.cookies.set("outreach_session", cookie)  # replay the logged-out cookie
        response = await client.get("/v1/auth/me")
        assert response.status_code == 401
        assert response.json()["code"] == "session_expired"

    async def test_garbage_cookie_is_401(self, client: httpx.AsyncClient) -> None:
        client.cookies.set("outreach_session", "forged")
        assert (await client.get("/v1/auth/me")).status_code == 401

    async def test_idle_session_expires(
        self, client: httpx.AsyncClient, frozen_clock: Clock, settings: Settings
    ) -> None:
        await sign_in(client, "ada@example.com")
        frozen_clock.advance(timedelta(minutes=settings.session_idle_minutes - 1))
        assert (await client.get("/v1/auth/me")).status_code == 200
        frozen_clock.advance(timedelta(minutes=settings.session_idle_minutes + 1))
        assert (await client.get("/v1/auth/me")).status_code == 401

    async def test_absolute_expiry_even_when_active(
        self, client: httpx.AsyncClient, frozen_clock: Clock, settings: Settings
    ) -> None:
        await sign_in(client, "ada@example.com")
        for _ in range(settings.session_absolute_days):
            frozen_clock.advance(timedelta(days=1))
            if (await client.get("/v1/auth/me")).status_code != 200:
                break
        frozen_clock.advance(timedelta(days=1))
        assert (await client.get("/v1/auth/me")).status_code == 401


class TestCsrf:
    async def test_unsafe_request_without_token_is_refused(self, client: httpx.AsyncClient) -> None:
        await sign_in(client, "ada@example.com")
        del client.headers["X-CSRF-Token"]
        response = await client.post("/v1/auth/logout")
        assert response.status_code == 403
        assert response.json()["code"] == "csrf_failed"

    async def test_wrong_token_is_refused(self, client: httpx.AsyncClient) -> None:
        await sign_in(client, "ada@example.com")
        client.headers["X-CSRF-Token"] = "guess"
        assert (await client.post("/v1/auth/logout")).status_code == 403

    async def test_foreign_origin_is_refused_even_with_token(
        self, client: httpx.AsyncClient
    ) -> None:
        await sign_in(client, "ada@example.com")
        response = await client.post("/v1/auth/logout", headers={"Origin": "https://evil.example"})
        assert response.status_code == 403
        referer = await client.post(
            "/v1/auth/logout", headers={"Referer": "https://evil.example/page"}
        )
        assert referer.status_code == 403

    async def test_own_origin_with_token_passes(self, client: httpx.AsyncClient) -> None:
        await sign_in(client, "ada@example.com")
        response = await client.post("/v1/auth/logout", headers={"Origin": "http://testserver"})
        assert response.status_code == 204

    async def test_safe_methods_need_no_token(self, client: httpx.AsyncClient) -> None:
        await sign_in(client, "ada@example.com")
        del client.headers["X-CSRF-Token"]
        assert (await client.get("/v1/auth/me")).status_code == 200

    async def test_attacker_chosen_cookie_and_header_are_refused(
        self, client: httpx.AsyncClient
    ) -> None:
        """The victim's session cookie plus a cookie and header the attacker chose (a
        planted cookie, e.g. from a sibling subdomain) must not pass: the token is the
        session's own."""
        await sign_in(client, "ada@example.com")
        session_cookie = client.cookies["outreach_session"]
        client.cookies.clear()
        client.cookies.set("outreach_session", session_cookie)
        client.cookies.set("outreach_csrf", "attacker-chosen-value")
        client.headers["X-CSRF-Token"] = "attacker-chosen-value"
        response = await client.post("/v1/auth/logout")
        assert response.status_code == 403
        assert response.json()["code"] == "csrf_failed"

    async def test_another_sessions_token_is_refused(self, app: FastAPI) -> None:
        async with make_client(app) as mallory, make_client(app) as ada:
            await sign_in(mallory, "mallory@example.com")
            await sign_in(ada, "ada@example.com")
            assert mallory.cookies["outreach_csrf"] != ada.cookies["outreach_csrf"]
            session_cookie = ada.cookies["outreach_session"]
            ada.cookies.clear()
            ada.cookies.set("outreach_session", session_cookie)
            ada.cookies.set("outreach_csrf", mallory.cookies["outreach_csrf"])
            ada.headers["X-CSRF-Token"] = mallory.cookies["outreach_csrf"]
            assert (await ada.post("/v1/auth/logout")).status_code == 403

    async def test_a_new_session_gets_a_new_token(self, client: httpx.AsyncClient) -> None:
        await sign_in(client, "ada@example.com")
        old = client.cookies["outreach_csrf"]
        await sign_in(client, "ada@example.com")
        assert client.cookies["outreach_csrf"] != old
        client.headers["X-CSRF-Token"] = old
        assert (await client.post("/v1/auth/logout")).status_code == 403

    async def test_me_replaces_a_planted_cookie_with_the_sessions_token(
        self, client: httpx.AsyncClient
    ) -> None:
        await sign_in(client, "ada@example.com")
        session_cookie = client.cookies["outreach_session"]
        right = client.cookies["outreach_csrf"]
        client.cookies.clear()
        client.cookies.set("outreach_session", session_cookie)
        client.cookies.set("outreach_csrf", "planted")
        me = await client.get("/v1/auth/me")
        assert me.status_code == 200
        assert me.cookies["outreach_csrf"] == right


async def test_production_csrf_cookie_is_host_prefixed_and_bound(
    settings: Settings, database: Database, session: AsyncSession
) -> None:
    """In production the CSRF cookie is ``__Host-outreach_csrf``: Secure, Path=/, no
    Domain, so no subdomain can plant it; its value is still the session's own token."""
    from outreach.auth.service import auth_service

    signed_in = await auth_service.dev_login(
        session, email="ada@example.com", name=None, user_agent=None, ip=None, previous_token=None
    )
    await session.flush()
    production = settings.model_copy(
        update={
            "env": Environment.production,
            "enable_dev_login": None,
            "allow_sqlite_in_production": True,
            "base_url": "https://outreach.example",
        }
    )
    async for app in _app(production, database):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="https://testserver") as client:
            client.cookies.set("__Host-outreach_session", signed_in.token)
            me = await client.get("/v1/auth/me")
            assert me.status_code == 200
            set_cookie = next(
                c
                for c in me.headers.get_list("set-cookie")
                if c.startswith("__Host-outreach_csrf=")
            )
            attributes = [part.strip().lower() for part in set_cookie.split(";")[1:]]
            assert "secure" in attributes
            assert "path=/" in attributes
            assert not any(part.startswith("domain") for part in attributes)
            token = me.cookies["__Host-outreach_csrf"]
            planted = await client.post("/v1/auth/logout", headers={"X-CSRF-Token": "planted"})
            assert planted.status_code == 403
            done = await client.post("/v1/auth/logout", headers={"X-CSRF-Token": token})
            assert done.status_code == 204


class TestSignInRateLimit:
    async def test_too_many_attempts_is_429_with_retry_after(
        self, settings: Settings, database: Database, frozen_clock: Clock
    ) -> None:
        limited = settings.model_copy(update={"signin_rate_limit": 3})
        async for app in _app(limited, database):
            async with make_client(app) as client:
                statuses = [
                    (
                        await client.post("/v1/auth/dev-login", json={"email": f"u{i}@x.io"})
                    ).status_code
                    for i in range(4)
                ]
                assert statuses == [200, 200, 200, 429]
                response = await client.post("/v1/auth/dev-login", json={"email": "z@x.io"})
                assert response.status_code == 429
                assert response.json()["code"] == "rate_limited"
                assert 1 <= int(response.headers["retry-after"]) <= 60
                frozen_clock.advance(timedelta(seconds=61))
                ok = await client.post("/v1/auth/dev-login", json={"email": "z@x.io"})
                assert ok.status_code == 200

    async def test_failed_attempts_count_too(
        self, settings: Settings, database: Database, frozen_clock: Clock
    ) -> None:
        limited = settings.model_copy(update={"signin_rate_limit": 2})
        async for app in _app(limited, database):
            async with make_client(app) as client:
                for _ in range(2):
                    bad = await client.post("/v1/auth/google", json={"credential": "x" * 20})
                    assert bad.status_code == 401
                third = await client.post("/v1/auth/google", json={"credential": "x" * 20})
                assert third.status_code == 429


@pytest.mark.usefixtures("redis_url")
async def test_rate_limit_through_redis(
    settings: Settings, database: Database, frozen_clock: Clock, redis_url: str
) -> None:
    import uuid

    from redis.asyncio import Redis

    limited = settings.model_copy(update={"signin_rate_limit": 2, "redis_url": redis_url})
    # A client address of its own, so parallel test runs never share a counter.
    address = f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
    async for app in _app(limited, database):
        assert isinstance(app.state.redis, Redis)
        transport = httpx.ASGITransport(app=app, client=(address, 1234))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            statuses = [
                (await client.post("/v1/auth/dev-login", json={"email": f"r{i}@x.io"})).status_code
                for i in range(3)
            ]
        assert statuses == [200, 200, 429]
        keys = await app.state.redis.keys(f"outreach:ratelimit:signin:{address}:*")
        assert len(keys) == 1
        await app.state.redis.delete(*keys)


async def test_admin_route_as_user_is_403(client: httpx.AsyncClient) -> None:
    await sign_in(client, "ada@example.com")
    response = await client.get("/v1/admin/users")
    assert response.status_code == 403
    assert response.json()["code"] == "admin_required"


async def test_user_row_is_keyed_case_insensitively(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    await sign_in(client, "ADA@example.com")
    await sign_in(client, "ada@EXAMPLE.com")
    assert await session.scalar(select(func.count()).select_from(User)) == 1
