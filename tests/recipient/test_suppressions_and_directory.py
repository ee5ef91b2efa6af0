"""Suppressions (user and global), suppression CSV import, the admin directory, enrichment."""

from __future__ import annotations

import uuid

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.models import AuditLog, UserRole
from outreach.recipient.lists import ListNotFound
from outreach.recipient.suppression import suppression_service
from tests.conftest import create_user, make_client, sign_in, wait_for_jobs
from tests.fakes.dns import FakeDNS
from tests.recipient.test_lists import all_items, imported


async def make_admin(session: AsyncSession, client: httpx.AsyncClient, email: str) -> dict:
    await create_user(session, email, role=UserRole.admin.value)
    await session.flush()
    return await sign_in(client, email)


async def test_user_suppressions_crud(
    rclient: httpx.AsyncClient, rapp: FastAPI, ada: dict, session: AsyncSession
) -> None:
    created = await rclient.post(
        "/v1/suppressions", json={"value": " Boss@Corp.COM ", "reason": "unsubscribed"}
    )
    assert created.status_code == 201
    assert created.json()["value"] == "boss@corp.com"
    assert created.json()["kind"] == "email"
    again = await rclient.post("/v1/suppressions", json={"value": "boss@corp.com"})
    assert again.json()["id"] == created.json()["id"]
    domain = await rclient.post("/v1/suppressions", json={"value": "@spam.example"})
    assert domain.json()["kind"] == "domain"
    assert domain.json()["value"] == "spam.example"
    bad = await rclient.post("/v1/suppressions", json={"value": "not a thing!"})
    assert bad.status_code == 422
    assert bad.json()["code"] == "invalid_suppression"
    bad_reason = await rclient.post("/v1/suppressions", json={"value": "a@b.co", "reason": "meh"})
    assert bad_reason.status_code == 422
    user_id = uuid.UUID(ada["id"])
    hits = await suppression_service.suppressed_among(
        session, user_id=user_id, emails=["boss@corp.com", "x@spam.example", "ok@corp.com"]
    )
    assert hits == {"boss@corp.com", "x@spam.example"}
    search = (await rclient.get("/v1/suppressions", params={"q": "spam"})).json()["items"]
    assert [s["value"] for s in search] == ["spam.example"]
    async with make_client(rapp) as other:
        await sign_in(other, "other@example.com")
        assert (await other.get("/v1/suppressions")).json()["items"] == []
        gone = await other.delete(f"/v1/suppressions/{created.json()['id']}")
        assert gone.status_code == 404
    assert (await rclient.delete(f"/v1/suppressions/{created.json()['id']}")).status_code == 204
    assert not await suppression_service.is_suppressed(
        session, user_id=user_id, email="boss@corp.com"
    )


async def test_global_suppressions_are_admin_only_and_apply_to_everyone(
    rclient: httpx.AsyncClient, rapp: FastAPI, session: AsyncSession
) -> None:
    user = await sign_in(rclient, "user@example.com")
    assert (await rclient.get("/v1/admin/suppressions")).status_code == 403
    async with make_client(rapp) as admin_client:
        admin = await make_admin(session, admin_client, "root@example.com")
        created = await admin_client.post(
            "/v1/admin/suppressions", json={"value": "competitor.com", "reason": "complaint"}
        )
        assert created.status_code == 201
        assert created.json()["scope"] == "global"
        assert await suppression_service.is_suppressed(
            session, user_id=uuid.UUID(user["id"]), email="ceo@competitor.com"
        )
        listed = (await admin_client.get("/v1/admin/suppressions")).json()["items"]
        assert [s["value"] for s in listed] == ["competitor.com"]
        removed = await admin_client.delete(f"/v1/admin/suppressions/{created.json()['id']}")
        assert removed.status_code == 204
    actions = list(
        await session.scalars(
            select(AuditLog.action).where(AuditLog.actor_id == uuid.UUID(admin["id"]))
        )
    )
    assert "suppression.global_added" in actions
    assert "suppression.global_removed" in actions


async def test_suppression_csv_import(rclient: httpx.AsyncClient, ada: dict) -> None:
    data = (
        b"Email,Reason\nA@x.com,bounced\nb@x.com,\nspam.example,complaint\nnot valid!,\na@x.com,\n"
    )
    response = await rclient.post(
        "/v1/suppressions/import", files={"file": ("s.csv", data)}, data={"reason": "manual"}
    )
    assert response.status_code == 202, response.text
    await wait_for_jobs()
    status = (await rclient.get(f"/v1/suppressions/imports/{response.json()['id']}")).json()
    assert status["status"] == "ready"
    assert status["counts"] == {"imported": 3, "duplicates": 1, "invalid": 1, "suppressed": 0}
    values = {
        (s["value"], s["reason"]) for s in (await rclient.get("/v1/suppressions")).json()["items"]
    }
    assert values == {("a@x.com", "bounced"), ("b@x.com", "manual"), ("spam.example", "complaint")}
    # a suppression import is not a recipient list
    assert (await rclient.get("/v1/recipients/lists")).json()["items"] == []


DIRECTORY_CSV = (
    b"Company,Contact Name,Title,Email,Domain,Industry,Location,Source\n"
    b"Acme,Ann Lee,Recruiter,ann@acme.test,acme.test,Software,Pune,careers page\n"
    b"Globex,Bo Chan,HR Lead,hr@globex.test,globex.test,Finance,Mumbai,\n"
    b"Gone Inc,Cy,CEO,cy@missing.test,missing.test,Software,Pune,\n"
)


async def test_directory_import_refresh_search_and_copy(
    rclient: httpx.AsyncClient, rapp: FastAPI, session: AsyncSession, fake_dns: FakeDNS
) -> None:
    fake_dns.add_mx("acme.test", "mx.acme.test")
    fake_dns.add_mx("globex.test", "mx.globex.test")
    admin = await make_admin(session, rclient, "root@example.com")
    response = await rclient.post(
        "/v1/admin/recipients/import", files={"file": ("dir.csv", DIRECTORY_CSV)}
    )
    assert response.status_code == 202, response.text
    await wait_for_jobs()
    status = (await rclient.get(f"/v1/admin/recipients/imports/{response.json()['id']}")).json()
    assert status["status"] == "ready"
    assert status["counts"]["imported"] == 3
    not_days = await rclient.post("/v1/admin/recipients/refresh", json={"older_than_days": False})
    assert not_days.status_code == 422
    refresh = await rclient.post("/v1/admin/recipients/refresh", json={"older_than_days": 30})
    assert refresh.status_code == 202
    assert refresh.json()["total"] == 3
    await wait_for_jobs()
    job = (await rclient.get(f"/v1/admin/recipients/refresh/{refresh.json()['id']}")).json()
    assert job["status"] == "completed"
    assert job["counts"] == {"deliverable": 1, "risky": 1, "undeliverable": 1}
    entries = (await rclient.get("/v1/admin/recipients")).json()["items"]
    assert len(entries) == 3
    actions = set(
        await session.scalars(
            select(AuditLog.action).where(AuditLog.actor_id == uuid.UUID(admin["id"]))
        )
    )
    assert {"recipient.directory_import", "recipient.directory_refresh"} <= actions

    async with make_client(rapp) as user_client:
        await sign_in(user_client, "seeker@example.com")
        assert (await user_client.post("/v1/admin/recipients/refresh", json={})).status_code == 403
        visible = (await user_client.get("/v1/recipients/directory")).json()["items"]
        assert sorted(e["email"] for e in visible) == ["ann@acme.test", "hr@globex.test"]
        pune = (
            await user_client.get(
                "/v1/recipients/directory", params={"location": "pune", "industry": "soft"}
            )
        ).json()["items"]
        assert [e["company"] for e in pune] == ["Acme"]
        target = (await user_client.post("/v1/recipients/lists", json={"name": "Dir"})).json()
        added = await user_client.post(
            "/v1/recipients/directory/add-to-list",
            json={"list_id": target["id"], "ids": [e["id"] for e in entries]},
        )
        assert added.json() == {"added": 2, "duplicates": 0, "suppressed": 0}
        items = await all_items(user_client, target["id"])
        assert [(i["email"], i["source"]) for i in items] == [
            ("ann@acme.test", "directory"),
            ("hr@globex.test", "directory"),
        ]


async def test_enrichment_inline_charges_for_found_only(
    rclient: httpx.AsyncClient, ada: dict, fake_dns: FakeDNS, session: AsyncSession
) -> None:
    fake_dns.add_mx("acme.com", "mx.acme.com")
    fake_dns.add_mx("globex.io", "mx.globex.io")
    target = (await rclient.post("/v1/recipients/lists", json={"name": "Found"})).json()
    body = {
        "companies": [
            {"name": "Acme Technologies Pvt Ltd", "person_name": "Ann Lee"},
            {"name": "Globex", "website": "https://www.globex.io/jobs"},
            {"name": "Nowhere Corp"},
        ],
        "add_to_list_id": target["id"],
    }
    assert (await rclient.post("/v1/enrich/bulk", json=body)).status_code == 400
    response = await rclient.post("/v1/enrich/bulk", json=body, headers={"Idempotency-Key": "e1"})
    assert response.status_code == 200, response.text
    job = response.json()
    assert job["status"] == "completed"
    acme, globex, nowhere = job["results"]
    assert acme["domain"] == "acme.com"
    assert acme["domain_source"] == "guessed"
    assert [c["email"] for c in acme["candidates"]] == [
        "ann.lee@acme.com",
        "careers@acme.com",
        "jobs@acme.com",
    ]
    assert globex["domain_source"] == "website"
    assert len(globex["candidates"]) == 3
    assert nowhere["candidates"] == []
    assert nowhere["reasons"] == ["domain_not_found"]
    assert job["credits_charged"] == 3 * 3 * 2
    assert job["credits_refunded"] == 18 - 12
    from outreach.credits.service import credit_service

    assert await credit_service.get_balance(session, user_id=uuid.UUID(ada["id"])) == 20 - 12
    assert job["counts"] == {"companies": 3, "found": 6, "added_to_list": 6}
    assert len(await all_items(rclient, target["id"])) == 6


async def test_enrichment_job_for_a_list(
    rclient: httpx.AsyncClient, ada: dict, fake_dns: FakeDNS, session: AsyncSession
) -> None:
    from outreach.credits.service import credit_service

    user_id = uuid.UUID(ada["id"])
    await credit_service.apply_ledger_entry(
        session, user_id=user_id, delta=100, reason="admin_grant", ref=None, idempotency_key="top"
    )
    await session.flush()
    for name in ("alpha", "beta", "gamma", "delta", "epsilon", "zeta"):
        fake_dns.add_mx(f"{name}.com", f"mx.{name}.com")
    rows = "".join(
        f"p@{n}.org,{n.title()}\n"
        for n in ("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "omega")
    )
    listed = await imported(rclient, f"email,company\n{rows}".encode())
    response = await rclient.post(
        "/v1/enrich/bulk", json={"list_id": listed["id"]}, headers={"Idempotency-Key": "e2"}
    )
    assert response.status_code == 202
    assert response.json()["status"] == "queued"
    await wait_for_jobs()
    job = (await rclient.get(f"/v1/enrich/jobs/{response.json()['id']}")).json()
    assert job["status"] == "completed"
    assert job["done"] == 7
    assert job["counts"]["found"] == 18
    assert job["credits_charged"] - job["credits_refunded"] == 36
    assert await credit_service.get_balance(session, user_id=user_id) == 120 - 36


async def test_the_enrichment_quote_of_a_list_is_what_starting_it_holds(
    rclient: httpx.AsyncClient, ada: dict, fake_dns: FakeDNS, session: AsyncSession
) -> None:
    from outreach.credits.service import credit_service
    from outreach.recipient.enrichment import enrichment_service

    user_id = uuid.UUID(ada["id"])
    fake_dns.add_mx("acme.com", "mx.acme.com")
    rows = "a@x.org,Acme\nb@x.org,ACME\nc@x.org,\nd@x.org,Globex\n"  # Acme twice, one blank
    listed = await imported(rclient, f"email,company\n{rows}".encode())
    list_id = uuid.UUID(listed["id"])

    quote = await enrichment_service.quote_list(session, user_id=user_id, list_id=list_id)

    assert (quote.companies, quote.max_per_company, quote.per_address_found) == (2, 3, 2)
    assert quote.held == 2 * 3 * 2
    assert not quote.too_many
    assert await credit_service.get_balance(session, user_id=user_id) == 20  # nothing charged
    job = await enrichment_service.start_bulk(
        session,
        user_id=user_id,
        companies=None,
        list_id=list_id,
        add_to_list_id=None,
        idempotency_key="quoted",
    )
    assert job.credits_charged == quote.held
    stranger = await create_user(session, "someone.else@example.com")
    with pytest.raises(ListNotFound):
        await enrichment_service.quote_list(session, user_id=stranger.id, list_id=list_id)
