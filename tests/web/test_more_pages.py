"""Enrichment on the list page (the held credits shown first, refused in words when
short, then progress and what was found) and the AI draft (who writes it said plainly,
charged once, saved as a template to edit)."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.app import create_app
from outreach.config import Settings, use_settings
from outreach.credits.service import credit_service
from outreach.kit.db import Database
from outreach.models import LedgerReason, Template, User
from outreach.recipient.enrichment import enrichment_service
from tests.conftest import make_client, wait_for_jobs
from tests.fakes.dns import FakeDNS
from tests.fakes.openai import FAKE_API_KEY, FAKE_MODEL, FakeOpenAI
from tests.web.conftest import GOOD, contacts_csv, run_key_of, sign_in_page

COMPANIES = sorted({g[2] for g in GOOD})  # six companies, one person each


async def uploaded_list(client: httpx.AsyncClient, token: str) -> str:
    response = await client.post(
        "/lists",
        data={"csrf_token": token, "name": "Data leads"},
        files={"file": ("leads.csv", contacts_csv(), "text/csv")},
    )
    assert response.status_code == 303, response.text
    await wait_for_jobs()
    return response.headers["location"]


async def me(session: AsyncSession) -> User:
    user = await session.scalar(select(User).where(User.email == "asha.rao@example.com"))
    assert user is not None
    return user


async def test_enrichment_shows_what_it_holds_and_refuses_in_words_when_credits_are_short(
    web_client: httpx.AsyncClient, session: AsyncSession
) -> None:
    token = await sign_in_page(web_client)
    list_url = await uploaded_list(web_client, token)
    page = (await web_client.get(list_url)).text
    held = len(COMPANIES) * 3 * 2
    assert f"each of the <strong>{len(COMPANIES)}</strong> companies" in page
    assert f"Starting holds <strong>{held}</strong> credits" in page
    assert "You have 20." in page
    assert f"Find addresses for up to {held} credits" in page
    key = re.search(r'name="run_key" value="(web-enrich:[^"]+)"', page)
    assert key is not None

    refused = await web_client.post(
        f"{list_url}/enrich", data={"csrf_token": token, "run_key": key.group(1)}
    )
    assert refused.status_code == 402
    assert 'role="alert"' in refused.text
    assert "Not enough credits" in refused.text
    assert "Traceback" not in refused.text
    # Unticked before the refusal, unticked after it.
    assert 'name="add_to_list" checked' not in refused.text
    assert await credit_service.get_balance(session, user_id=(await me(session)).id) == 20


async def test_enrichment_runs_as_a_job_with_progress_and_adds_what_it_found(
    web_client: httpx.AsyncClient, session: AsyncSession, fake_dns: FakeDNS
) -> None:
    fake_dns.add_mx("acme.com", "mx.acme.com")
    fake_dns.add_mx("globex.com", "mx.globex.com")
    token = await sign_in_page(web_client)
    user = await me(session)
    await credit_service.apply_ledger_entry(
        session,
        user_id=user.id,
        delta=100,
        reason=LedgerReason.admin_grant,
        ref=None,
        idempotency_key="top-up",
    )
    await session.flush()
    list_url = await uploaded_list(web_client, token)
    page = (await web_client.get(list_url)).text
    key = re.search(r'name="run_key" value="(web-enrich:[^"]+)"', page)
    assert key is not None
    started = await web_client.post(
        f"{list_url}/enrich",
        data={"csrf_token": token, "run_key": key.group(1), "add_to_list": "on"},
    )
    assert started.status_code == 303, started.text
    job_url = started.headers["location"]
    assert "?enrich=" in job_url
    # Six companies are more than run inside the request: a job (run here at once, as
    # jobs are inline in tests; its progress is shown in the next test).
    await wait_for_jobs()
    done = (await web_client.get(job_url)).text
    assert 'id="enrich-status">completed<' in done
    assert 'id="enrich-found">6<' in done  # three at each of the two companies with mail
    assert 'id="enrich-added">6<' in done
    assert 'id="enrich-cost">12<' in done  # 2 per address found; the rest came back
    assert "careers@acme.com" in done
    assert "not found" in done  # the companies whose domain has no mail server
    assert await credit_service.get_balance(session, user_id=user.id) == 120 - 12
    # The same form sent twice: the first answer again, the same run, charged once.
    again = await web_client.post(
        f"{list_url}/enrich",
        data={"csrf_token": token, "run_key": key.group(1), "add_to_list": "on"},
    )
    assert again.headers["location"] == job_url
    assert await credit_service.get_balance(session, user_id=user.id) == 120 - 12


async def test_a_running_enrichment_shows_its_progress_and_refreshes(
    web_client: httpx.AsyncClient, session: AsyncSession, database: Database
) -> None:
    token = await sign_in_page(web_client)
    user = await me(session)
    await credit_service.apply_ledger_entry(
        session,
        user_id=user.id,
        delta=100,
        reason=LedgerReason.admin_grant,
        ref=None,
        idempotency_key="top-up",
    )
    list_url = await uploaded_list(web_client, token)
    # Started in the test's own session, which never commits: the job waits for us.
    job = await enrichment_service.start_bulk(
        session,
        user_id=user.id,
        companies=None,
        list_id=uuid.UUID(list_url.rsplit("/", 1)[1]),
        add_to_list_id=None,
        idempotency_key="by-hand",
    )
    await session.flush()
    queued = (await web_client.get(f"{list_url}?enrich={job.id}")).text
    assert 'id="enrich-status">queued<' in queued
    assert 'value="0">0 of 6</progress>' in queued
    assert 'id="enrichment" data-refresh="1"' in queued
    await enrichment_service.enrich_next_companies(database, job_id=job.id, done=0, count=2)
    running = (await web_client.get(f"{list_url}?enrich={job.id}")).text
    assert "2 of 6 companies looked up" in running
    assert 'value="2">2 of 6</progress>' in running
    assert 'id="enrichment" data-refresh="1"' in running


async def test_the_ai_draft_without_a_model_is_the_built_in_writer_said_so_and_charged_once(
    web_client: httpx.AsyncClient, session: AsyncSession
) -> None:
    token = await sign_in_page(web_client)
    page = await web_client.get("/templates/draft")
    assert page.status_code == 200
    assert "<strong>The built-in writer</strong>: no AI model is set up on this server" in page.text
    assert 'id="draft-cost">A draft costs <strong>2</strong> credits; you have 20.' in page.text
    key = run_key_of(page)
    nameless = await web_client.post(
        "/templates/draft",
        data={
            "csrf_token": token,
            "run_key": key,
            "target_role": "Data Engineer",
            "tone": "direct",
        },
    )
    assert nameless.status_code == 422
    assert "give the draft a name" in nameless.text
    assert 'value="Data Engineer"' in nameless.text
    assert '<option value="direct" selected>' in nameless.text

    form = {
        "csrf_token": token,
        "run_key": key,
        "name": "Data intro",
        "target_role": "Data Engineer",
        "tone": "warm",
        "length": "short",
    }
    written = await web_client.post("/templates/draft", data=form)
    assert written.status_code == 303, written.text
    editor = (await web_client.get(written.headers["location"])).text
    assert "Draft written and saved (2 credits)" in editor
    assert "First drafted by the built-in writer (no AI" in editor
    assert "Data Engineer roles at" in editor  # the draft's text, in the editor
    saved = (await session.scalars(select(Template))).all()
    assert [(t.name, t.source) for t in saved] == [("Data intro", "built-in")]
    user = await me(session)
    assert await credit_service.get_balance(session, user_id=user.id) == 18
    resent = await web_client.post("/templates/draft", data=form)  # the same draft, once
    assert resent.headers["location"] == written.headers["location"]
    assert resent.headers["idempotent-replayed"] == "true"
    assert len((await session.scalars(select(Template))).all()) == 1
    assert await credit_service.get_balance(session, user_id=user.id) == 18
    other = await web_client.post("/templates/draft", data={**form, "name": "Another"})
    assert other.status_code == 422  # the key belongs to the first form: refused in words
    assert "this Idempotency-Key was used with a different request" in other.text
    assert 'value="Another"' in other.text
    assert await credit_service.get_balance(session, user_id=user.id) == 18


@pytest.fixture
async def llm_client(
    web_settings: Settings, database: Database, fake_openai: FakeOpenAI
) -> AsyncIterator[httpx.AsyncClient]:
    changed = web_settings.model_copy(
        update={
            "llm_base_url": fake_openai.base_url,
            "llm_model": FAKE_MODEL,
            "llm_api_key": SecretStr(FAKE_API_KEY),
        }
    )
    app: FastAPI = create_app(changed, database=database)
    async with app.router.lifespan_context(app), make_client(app) as client:
        yield client
    use_settings(web_settings)


async def test_with_a_model_the_draft_page_names_it(llm_client: httpx.AsyncClient) -> None:
    await sign_in_page(llm_client)
    page = (await llm_client.get("/templates/draft")).text
    assert f"An AI model ({FAKE_MODEL}) writes the draft" in page
    assert "built-in writer</strong>" not in page
    assert 'name="run_key"' in page
