"""GET /v1/me/export: a ZIP with a sample of every kind of data, and no secrets."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.config import Settings
from outreach.kit.clock import Clock
from outreach.kit.db import Database
from outreach.models import AuditLog
from tests.account.conftest import GMAIL, LIST_CSV, populate_account
from tests.conftest import sign_in
from tests.fakes.google import FakeGoogle
from tests.resume import documents


def table(archive: zipfile.ZipFile, name: str) -> list[dict]:
    rows: list[dict] = json.loads(archive.read(f"data/{name}.json"))
    return rows


async def test_export_holds_a_sample_of_every_kind_of_data(
    client: httpx.AsyncClient,
    session: AsyncSession,
    database: Database,
    account_settings: Settings,
    fake_google: FakeGoogle,
    frozen_clock: Clock,
) -> None:
    account = await populate_account(client, session, database, fake_google, frozen_clock)
    response = await client.get("/v1/me/export")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    assert response.headers["content-disposition"].startswith('attachment; filename="outreach-')
    archive = zipfile.ZipFile(io.BytesIO(response.content))

    manifest = json.loads(archive.read("account.json"))
    assert manifest["profile"]["email"] == documents.EMAIL
    assert manifest["profile"]["name"] == documents.NAME
    assert manifest["credit_balance"] == account.me["credit_balance"] - 3  # 3 emails scheduled
    assert manifest["missing_files"] == []
    for name, count in manifest["tables"].items():
        assert len(json.loads(archive.read(name))) == count

    reasons = {e["reason"] for e in table(archive, "ledger_entries")}
    assert {"signup_grant", "campaign_schedule"} <= reasons
    [listed] = table(archive, "recipient_lists")
    assert listed["name"] == "Targets"
    assert {r["email"] for r in table(archive, "recipients")} == {
        "ravi@acme.com",
        "meera@globex.com",
        "sam@initech.com",
    }
    [template] = table(archive, "templates")
    [version] = table(archive, "template_versions")
    assert version["template_id"] == template["id"]
    assert version["subject"].startswith("Hello")
    [campaign] = table(archive, "campaigns")
    assert campaign["name"] == "Data roles"
    emails = table(archive, "emails")
    assert len(emails) == 3
    sent = [e for e in emails if e["status"] == "sent"]
    assert len(sent) == 1
    assert sent[0]["subject"].startswith("Hello")
    assert sent[0]["sent_at"]
    [resume] = table(archive, "resumes")
    assert resume["file_name"] == "Priya CV.pdf"
    assert documents.NAME in resume["text"]
    assert [p["amount_paise"] for p in table(archive, "payment_orders")] == [19900]
    assert [s["value"] for s in table(archive, "suppressions")] == ["nobody@umbrella.com"]
    assert {"auth.signup", "mailbox.connected"} <= {a["action"] for a in table(archive, "activity")}

    # The files as uploaded, byte for byte.
    resume_file = f"files/resumes/{account.resume.id}/Priya CV.pdf"
    assert hashlib.sha256(archive.read(resume_file)).hexdigest() == account.resume.sha256
    assert archive.read(f"files/lists/{account.recipient_list.id}/targets.csv") == LIST_CSV
    assert set(manifest["files"]) == {
        resume_file,
        f"files/lists/{account.recipient_list.id}/targets.csv",
    }

    # Secrets never leave: no tokens, passwords or session hashes.
    mailboxes = table(archive, "mailboxes")
    assert {m["address"] for m in mailboxes} == {documents.EMAIL, GMAIL}
    assert all("refresh_token_encrypted" not in m for m in mailboxes)
    assert all("access_token_encrypted" not in m for m in mailboxes)
    assert all("token_hash" not in s for s in table(archive, "sessions"))
    everything = b"".join(archive.read(n) for n in archive.namelist() if n.endswith(".json"))
    assert account.grant.refresh_token.encode() not in everything

    logged = await session.scalar(select(AuditLog).where(AuditLog.action == "account.exported"))
    assert logged is not None
    assert logged.actor_id == account.user.id


async def test_export_is_only_your_own(
    client: httpx.AsyncClient, session: AsyncSession, account_settings: Settings
) -> None:
    assert (await client.get("/v1/me/export")).status_code == 401
    await sign_in(client, "other@example.com")
    archive = zipfile.ZipFile(io.BytesIO((await client.get("/v1/me/export")).content))
    manifest = json.loads(archive.read("account.json"))
    assert manifest["profile"]["email"] == "other@example.com"
    assert table(archive, "recipients") == []
    assert [e["reason"] for e in table(archive, "ledger_entries")] == ["signup_grant"]
