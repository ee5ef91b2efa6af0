import uuid

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.models import User, UserRole
from tests.conftest import create_user, sign_in


async def sign_in_admin(client: httpx.AsyncClient, session: AsyncSession) -> dict:
    me = await sign_in(client, "root@example.com")
    user = await session.get(User, uuid.UUID(me["id"]))
    assert user is not None
    user.role = UserRole.admin
    await session.flush()
    return me


class TestUsers:
    async def test_list_and_search(self, client: httpx.AsyncClient, session: AsyncSession) -> None:
        await sign_in_admin(client, session)
        for name in ("alice", "bob", "alina"):
            await create_user(session, f"{name}@example.com", balance=3)
        page = (await client.get("/v1/admin/users", params={"q": "ALI"})).json()
        assert sorted(u["email"] for u in page["items"]) == [
            "alice@example.com",
            "alina@example.com",
        ]
        assert {u["credit_balance"] for u in page["items"]} == {3}
        first = (await client.get("/v1/admin/users", params={"limit": 2})).json()
        assert len(first["items"]) == 2
        rest = (await client.get("/v1/admin/users", params={"cursor": first["next_cursor"]})).json()
        assert len(first["items"]) + len(rest["items"]) == 4

    async def test_role_change_is_audited(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        await sign_in_admin(client, session)
        bob = await create_user(session, "bob@example.com")
        response = await client.post(f"/v1/admin/users/{bob.id}/role", json={"role": "admin"})
        assert response.status_code == 200
        assert response.json()["role"] == "admin"
        logs = (
            await client.get("/v1/admin/audit-logs", params={"action": "admin.role_change"})
        ).json()
        assert logs["items"][0]["target_id"] == str(bob.id)
        assert logs["items"][0]["details"] == {"from": "user", "to": "admin"}

    async def test_unknown_user_is_404(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        await sign_in_admin(client, session)
        response = await client.post(f"/v1/admin/users/{uuid.uuid4()}/role", json={"role": "admin"})
        assert response.status_code == 404
        assert response.json()["code"] == "user_not_found"
        bad_role = await client.post(f"/v1/admin/users/{uuid.uuid4()}/role", json={"role": "god"})
        assert bad_role.status_code == 422


class TestCreditGrants:
    async def test_grant_needs_idempotency_key(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        await sign_in_admin(client, session)
        bob = await create_user(session, "bob@example.com")
        response = await client.post(
            f"/v1/admin/users/{bob.id}/credits", json={"delta": 5, "reason": "goodwill"}
        )
        assert response.status_code == 400
        assert response.json()["code"] == "idempotency_key_missing"

    async def test_grant_replay_and_deduct(
        self, client: httpx.AsyncClient, session: AsyncSession
    ) -> None:
        await sign_in_admin(client, session)
        bob = await create_user(session, "bob@example.com", balance=1)
        url = f"/v1/admin/users/{bob.id}/credits"
        headers = {"Idempotency-Key": "grant-1"}
        first = await client.post(url, json={"delta": 50, "reason": "goodwill"}, headers=headers)
        again = await client.post(url, json={"delta": 50, "reason": "goodwill"}, headers=headers)
        assert first.status_code == again.status_code == 200
        assert first.json()["balance"] == 51
        assert again.json() == first.json()
        deduct = await client.post(
            url, json={"delta": -51, "reason": "abuse"}, headers={"Idempotency-Key": "grant-2"}
        )
        assert deduct.json()["balance"] == 0
        assert deduct.json()["entry"]["reason"] == "admin_deduct"
        overdraw = await client.post(
            url, json={"delta": -1, "reason": "abuse"}, headers={"Idempotency-Key": "grant-3"}
        )
        assert overdraw.status_code == 402
        assert overdraw.json()["code"] == "insufficient_credits"
        zero = await client.post(
            url, json={"delta": 0, "reason": "noop"}, headers={"Idempotency-Key": "grant-4"}
        )
        assert zero.status_code == 422
        logs = (
            await client.get("/v1/admin/audit-logs", params={"action": "admin.credit_grant"})
        ).json()
        assert [log["details"]["delta"] for log in logs["items"]] == [-51, 50]


async def test_audit_log_filters(client: httpx.AsyncClient, session: AsyncSession) -> None:
    me = await sign_in_admin(client, session)
    logs = (await client.get("/v1/admin/audit-logs", params={"actor_id": me["id"]})).json()
    assert {log["action"] for log in logs["items"]} == {"auth.signup", "auth.login"}
    assert all(log["ip"] == "127.0.0.1" for log in logs["items"])
    assert all(log["request_id"] for log in logs["items"])
    future = (
        await client.get("/v1/admin/audit-logs", params={"since": "2999-01-01T00:00:00Z"})
    ).json()
    assert future["items"] == []
    naive = await client.get("/v1/admin/audit-logs", params={"since": "2020-01-01T00:00:00"})
    assert naive.status_code == 422
    timestamp = await client.get("/v1/admin/audit-logs", params={"until": "1700000000.5"})
    assert timestamp.status_code == 422
