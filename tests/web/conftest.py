"""Fixtures for the web pages: the app with outbox mailboxes allowed, a client that
signs in through the sign-in page, and sample data a user would upload."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from playwright.async_api import Page
from pydantic import SecretStr

from outreach.app import create_app
from outreach.config import Settings, use_settings
from outreach.kit.db import Database
from tests.conftest import make_client
from tests.fakes.dns import FakeDNS, fake_dns, fake_dns_server  # noqa: F401
from tests.fakes.razorpay import FakeRazorpay
from tests.payment.conftest import (  # noqa: F401
    fake_razorpay,
    fake_razorpay_server,
    with_razorpay,
)
from tests.web.browser import LiveServer, open_browser, serve

GOOD = [
    ("ravi.kumar@acme.example", "Ravi", "Acme", "Engineering Manager"),
    ("meera.iyer@globex.example", "Meera", "Globex", "Head of Data"),
    ("arjun.mehta@initech.example", "Arjun", "Initech", "CTO"),
    ("sara.thomas@umbrella.example", "Sara", "Umbrella", "Talent Partner"),
    ("kabir.singh@hooli.example", "Kabir", "Hooli", "Staff Engineer"),
    ("ananya.rao@piedpiper.example", "Ananya", "Pied Piper", "VP Engineering"),
]
BAD_ROW = ("neha.at.acme.example", "Neha", "Acme", "Recruiter")  # row 5: no @


def contacts_csv() -> bytes:
    """Six good people and one row whose address has no @ (row 5 of the file)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["Email", "First Name", "Company", "Title"])
    for row in [*GOOD[:3], BAD_ROW, *GOOD[3:]]:
        writer.writerow(row)
    return out.getvalue().encode()


TEMPLATE_SUBJECT = "{{ first_name | default('Hello') }}, data engineering at {{ company }}?"
TEMPLATE_BODY = (
    "Hi {{ first_name | default('there') }},\n\n"
    "I build data pipelines and would love to help {{ company }}.\n\n"
    "Would you have 15 minutes next week?\n"
)


@pytest.fixture
def web_settings(
    settings: Settings,
    tmp_path: Path,
    fake_dns: FakeDNS,  # noqa: F811
) -> Iterator[Settings]:
    """The test settings, with the development outbox allowed (emails become files) and
    domains resolved by the local fake DNS (verification and enrichment)."""
    changed = settings.model_copy(
        update={
            "allow_outbox_mailboxes": True,
            "outbox_path": tmp_path / "outbox",
            "gmail_client_secret": SecretStr("fake-gmail-client-secret"),
            "dns_nameservers": [fake_dns.nameserver],
            "dns_timeout_seconds": 1.0,
        }
    )
    yield changed
    use_settings(settings)


@pytest.fixture
async def web_app(web_settings: Settings, database: Database) -> AsyncIterator[FastAPI]:
    app = create_app(web_settings, database=database)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def web_client(web_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(web_app) as client:
        yield client


def csrf_of(page: httpx.Response) -> str:
    """The token a page put in its forms."""
    found = re.search(r'name="csrf_token" value="([^"]*)"', page.text)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def run_key_of(page: httpx.Response | str) -> str:
    """The key a page put in its form that starts paid work (web.idempotency)."""
    text = page if isinstance(page, str) else page.text
    found = re.search(r'name="run_key" value="([^"]*)"', text)
    assert found, "the page has no form with a run key"
    return found.group(1)


async def schedule_page(client: httpx.AsyncClient, campaign_url: str, token: str) -> httpx.Response:
    """Press "Schedule" on the campaign's review page."""
    review = await client.get(f"{campaign_url}/review")
    return await client.post(
        f"{campaign_url}/schedule", data={"csrf_token": token, "run_key": run_key_of(review)}
    )


async def sign_in_page(client: httpx.AsyncClient, email: str = "asha.rao@example.com") -> str:
    """Sign in through the development sign-in form; returns the CSRF token of home."""
    response = await client.post("/sign-in/dev", data={"email": email, "name": "Asha Rao"})
    assert response.status_code == 303, response.text
    home = await client.get("/")
    assert home.status_code == 200, home.text
    return csrf_of(home)


@pytest.fixture
async def live_server(
    web_settings: Settings, committing_database: Database
) -> AsyncIterator[LiveServer]:
    async for server in serve(web_settings, committing_database):
        yield server


@pytest.fixture
async def paying_server(
    web_settings: Settings,
    committing_database: Database,
    fake_razorpay: FakeRazorpay,  # noqa: F811
) -> AsyncIterator[LiveServer]:
    """The live server with Razorpay test-mode keys, its API calls going to the fake."""
    async for server in serve(with_razorpay(web_settings, fake_razorpay), committing_database):
        yield server


@pytest.fixture
async def page(live_server: LiveServer) -> AsyncIterator[Page]:
    async for opened in open_browser():
        yield opened
