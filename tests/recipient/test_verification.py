"""Verification against the local DNS server (dnslib) and SMTP server (aiosmtpd)."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.config import Settings
from outreach.credits.service import credit_service
from outreach.kit.db import Database
from outreach.recipient.addresses import normalise_email
from outreach.recipient.dns import DomainInfo
from outreach.recipient.suppression import suppression_service
from outreach.recipient.verification import Outcome, _results_document, verification_service
from tests.conftest import make_client, sign_in, wait_for_jobs
from tests.fakes.dns import FakeDNS
from tests.recipient.conftest import started_app
from tests.recipient.test_lists import imported

KEY = {"Idempotency-Key": "bulk-1"}


@pytest.fixture
def zone(fake_dns: FakeDNS) -> FakeDNS:
    fake_dns.add_mx("acme.test", "mx.acme.test")
    fake_dns.add_mx("mailinator.com", "mx.mailinator.com")
    fake_dns.add_a("aonly.test", "127.0.0.1")
    fake_dns.add_null_mx("nomail.test")
    fake_dns.add_name("empty.test")
    fake_dns.fail("broken.test")
    return fake_dns


async def balance(session: AsyncSession, user: dict) -> int:
    return await credit_service.get_balance(session, user_id=uuid.UUID(user["id"]))


async def verify(client: httpx.AsyncClient, email: str, **headers: str) -> dict[str, Any]:
    response = await client.post("/v1/verify/email", json={"email": email}, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize(
    ("email", "status", "reasons"),
    [
        ("Ada@Acme.test", "deliverable", ["mx_found"]),
        ("careers@acme.test", "risky", ["mx_found", "role_account"]),
        ("x@aonly.test", "deliverable", ["a_record_fallback"]),
        ("x@nomail.test", "undeliverable", ["null_mx"]),
        ("x@empty.test", "undeliverable", ["no_mx"]),
        ("x@missing.test", "undeliverable", ["domain_not_found"]),
        ("x@mailinator.com", "risky", ["mx_found", "disposable_domain"]),
        ("not an address", "undeliverable", ["invalid_syntax"]),
    ],
)
async def test_single_verification_verdicts(
    rclient: httpx.AsyncClient,
    ada: dict,
    zone: FakeDNS,
    email: str,
    status: str,
    reasons: list[str],
) -> None:
    result = await verify(rclient, email)
    assert (result["status"], result["reasons"]) == (status, reasons)
    assert result["credits_charged"] == 1


async def test_single_charges_once_and_recent_results_are_free(
    rclient: httpx.AsyncClient, ada: dict, zone: FakeDNS, session: AsyncSession
) -> None:
    first = await verify(rclient, "ada@acme.test")
    assert first["cached"] is False
    assert first["credits_charged"] == 1
    again = await verify(rclient, " ADA@acme.test ")
    assert again["cached"] is True
    assert again["credits_charged"] == 0
    assert zone.queries[("acme.test", "MX")] == 1
    assert await balance(session, ada) == 19
    keyed = await verify(rclient, "bob@acme.test", **{"Idempotency-Key": "k1"})
    replay = await rclient.post(
        "/v1/verify/email", json={"email": "bob@acme.test"}, headers={"Idempotency-Key": "k1"}
    )
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json() == keyed
    assert await balance(session, ada) == 18


async def test_dns_failure_is_unknown_and_free(
    rclient: httpx.AsyncClient, ada: dict, zone: FakeDNS, session: AsyncSession
) -> None:
    result = await verify(rclient, "x@broken.test")
    assert (result["status"], result["reasons"], result["credits_charged"]) == (
        "unknown",
        ["dns_error"],
        0,
    )
    assert await balance(session, ada) == 20


async def test_undeliverable_and_disposable_are_suppressed(
    rclient: httpx.AsyncClient, ada: dict, zone: FakeDNS, session: AsyncSession
) -> None:
    await verify(rclient, "x@missing.test")
    await verify(rclient, "y@mailinator.com")
    await verify(rclient, "fine@acme.test")
    page = (await rclient.get("/v1/suppressions")).json()["items"]
    assert sorted((s["value"], s["reason"], s["source"]) for s in page) == [
        ("x@missing.test", "invalid", "verification"),
        ("y@mailinator.com", "disposable", "verification"),
    ]
    user_id = uuid.UUID(ada["id"])
    assert await suppression_service.is_suppressed(session, user_id=user_id, email="x@missing.test")
    assert not await suppression_service.is_suppressed(
        session, user_id=user_id, email="fine@acme.test"
    )


async def test_single_without_credits_is_402(
    rclient: httpx.AsyncClient, zone: FakeDNS, session: AsyncSession
) -> None:
    user = await sign_in(rclient, "broke@example.com")
    await credit_service.apply_ledger_entry(
        session,
        user_id=uuid.UUID(user["id"]),
        delta=-20,
        reason="admin_deduct",
        ref=None,
        idempotency_key="drain",
    )
    await session.flush()
    response = await rclient.post("/v1/verify/email", json={"email": "a@acme.test"})
    assert response.status_code == 402
    assert response.json()["code"] == "insufficient_credits"


async def test_bulk_inline_charges_once_refunds_unknown_one_query_per_domain(
    rclient: httpx.AsyncClient, ada: dict, zone: FakeDNS, session: AsyncSession
) -> None:
    emails = [f"user{i}@acme.test" for i in range(8)] + ["USER0@acme.test"]
    emails += [f"p{i}@aonly.test" for i in range(3)] + ["a@broken.test", "b@broken.test", "junk"]
    missing_key = await rclient.post("/v1/verify/bulk", json={"emails": emails})
    assert missing_key.status_code == 400
    response = await rclient.post("/v1/verify/bulk", json={"emails": emails}, headers=KEY)
    assert response.status_code == 202, response.text
    job = response.json()
    assert (job["total"], job["credits_charged"], job["status"]) == (14, 14, "queued")
    replay = await rclient.post("/v1/verify/bulk", json={"emails": emails}, headers=KEY)
    assert replay.json()["id"] == job["id"]
    await wait_for_jobs()
    done = (await rclient.get(f"/v1/verify/jobs/{job['id']}")).json()
    assert done["status"] == "completed"
    assert done["done"] == 14
    assert done["counts"] == {"deliverable": 11, "unknown": 2, "undeliverable": 1}
    assert done["credits_refunded"] == 2
    assert await balance(session, ada) == 20 - 14 + 2
    assert zone.queries[("acme.test", "MX")] == 1
    assert zone.queries[("aonly.test", "MX")] == 1
    assert zone.queries[("aonly.test", "A")] == 1
    results, cursor = [], None
    while True:
        page = (
            await rclient.get(
                f"/v1/verify/jobs/{job['id']}/results",
                params={"limit": 5, **({"cursor": cursor} if cursor else {})},
            )
        ).json()
        results += page["items"]
        if not (cursor := page["next_cursor"]):
            break
    assert len(results) == 14
    assert {r["status"] for r in results} >= {"deliverable", "unknown"}


async def test_bulk_list_updates_recipients(
    rclient: httpx.AsyncClient, ada: dict, zone: FakeDNS
) -> None:
    listed = await imported(rclient, b"email\nann@acme.test\nhr@acme.test\nx@missing.test\n")
    response = await rclient.post("/v1/verify/bulk", json={"list_id": listed["id"]}, headers=KEY)
    assert response.status_code == 202
    assert response.json()["credits_charged"] == 3
    await wait_for_jobs()
    items = (await rclient.get(f"/v1/recipients/lists/{listed['id']}/items")).json()["items"]
    assert [(i["email"], i["verification_status"]) for i in items] == [
        ("ann@acme.test", "deliverable"),
        ("hr@acme.test", "risky"),
        ("x@missing.test", "undeliverable"),
    ]
    risky = (
        await rclient.get(f"/v1/recipients/lists/{listed['id']}/items", params={"status": "risky"})
    ).json()["items"]
    assert [i["email"] for i in risky] == ["hr@acme.test"]


async def test_bulk_without_enough_credits_changes_nothing(
    rclient: httpx.AsyncClient, ada: dict, zone: FakeDNS, session: AsyncSession
) -> None:
    emails = [f"u{i}@acme.test" for i in range(25)]
    response = await rclient.post("/v1/verify/bulk", json={"emails": emails}, headers=KEY)
    assert response.status_code == 402
    assert response.json()["required"] == 25
    assert response.json()["available"] == 20
    assert await balance(session, ada) == 20
    too_many = await rclient.post(
        "/v1/verify/bulk", json={"emails": ["a@b.co"] * 10_001}, headers={"Idempotency-Key": "x"}
    )
    assert too_many.status_code == 422
    assert too_many.json()["code"] == "too_many_emails"
    other = await rclient.post(
        "/v1/verify/bulk", json={"list_id": str(uuid.uuid4())}, headers={"Idempotency-Key": "y"}
    )
    assert other.status_code == 404


class _Mailbox:
    """Accepts known@… and anything at catchall.test; refuses other recipients."""

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if address.startswith("known@") or address.endswith("@catchall.test"):
            envelope.rcpt_tos.append(address)
            return "250 OK"
        return "550 5.1.1 No such user here"


@pytest.fixture
def smtp_port() -> Iterator[int]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(_Mailbox(), hostname="127.0.0.1", port=port)
    controller.start()
    yield port
    controller.stop()


async def test_smtp_probe_with_catch_all_detection(
    recipient_settings: Settings, database: Database, fake_dns: FakeDNS, smtp_port: int
) -> None:
    for domain in ("probe.test", "catchall.test"):
        fake_dns.add_mx(domain, f"mx.{domain}")
        fake_dns.add_a(f"mx.{domain}", "127.0.0.1")
    emails = ["known@probe.test", "ghost@probe.test", "anyone@catchall.test"]
    async for app in started_app(
        recipient_settings, database, smtp_probe_enabled=True, smtp_probe_port=smtp_port
    ):
        async with make_client(app) as client:
            await sign_in(client, "prober@example.com")
            single = await verify(client, "ghost@probe.test")
            assert single["status"] == "deliverable"  # no probe on a request
            job = (
                await client.post("/v1/verify/bulk", json={"emails": emails}, headers=KEY)
            ).json()
            await wait_for_jobs()
            results = (await client.get(f"/v1/verify/jobs/{job['id']}/results")).json()["items"]
    verdicts = {r["email"]: (r["status"], r["reasons"]) for r in results}
    assert verdicts == {
        "anyone@catchall.test": ("risky", ["mx_found", "catch_all"]),
        "ghost@probe.test": ("undeliverable", ["mailbox_not_found", "mx_found"]),
        "known@probe.test": ("deliverable", ["mx_found", "smtp_accepted"]),
    }


def test_results_document_serialises_each_shared_verdict_once_and_every_address() -> None:
    info = DomainInfo("acme.io", "ok", ["mx.acme.io"])
    shared = verification_service.verdict("acme.io", info, role=False)
    own = verification_service.classify(normalise_email("hr@acme.io"), info)
    outcomes = [
        shared.outcome(normalise_email("ann@acme.io")),
        own,
        shared.outcome(normalise_email("jösé@acme.io")),
        Outcome('"a b"@acme.io', "acme.io", "undeliverable", ["invalid_syntax"], {"e": "\\"}),
    ]
    assert outcomes[0].reasons is outcomes[2].reasons  # one verdict, shared
    rows = json.loads(_results_document(outcomes))
    assert rows == [
        {"email": o.email, "status": o.status, "reasons": o.reasons, "details": o.details}
        for o in outcomes
    ]
    assert rows[1]["reasons"] == ["mx_found", "role_account"]
    assert rows[2]["email"] == "jösé@acme.io"
    assert json.loads(_results_document([])) == []
