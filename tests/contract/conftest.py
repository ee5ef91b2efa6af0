"""The app the contract fuzzing calls: every outside service faked, nothing disabled.

schemathesis calls an ASGI app in process from its own event loop thread, so
this app is not bound to the test's rolled-back transaction (that connection
lives on pytest's loop): it opens its own engine on the worker's database and
really commits. Every table is emptied after the module, as with
``committing_database``; files go to folders of their own.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from schemathesis.python import asgi
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from outreach.app import create_app
from outreach.config import Settings, use_settings
from outreach.kit.db import create_engine
from outreach.models import User, UserRole
from tests.conftest import _truncate_all
from tests.fakes.dns import FakeDNS, fake_dns_server  # noqa: F401
from tests.fakes.gmail import FakeGmail
from tests.fakes.google import FakeGoogle
from tests.fakes.google_oauth import FAKE_CLIENT_SECRET
from tests.fakes.openai import FAKE_API_KEY, FAKE_MODEL, FakeOpenAI
from tests.fakes.razorpay import FakeRazorpay

CSRF_COOKIE = "outreach_csrf"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "fuzz: schemathesis against the OpenAPI document (more examples: make fuzz)"
    )


@pytest.fixture(scope="session")
def contract_razorpay() -> Iterator[FakeRazorpay]:
    with FakeRazorpay() as fake:
        yield fake


def _promote_to_admin(database_url: str, email: str) -> None:
    """Make ``email`` an admin, from a thread of its own (the caller's loop is pytest's)."""

    async def promote() -> None:
        engine = create_engine(database_url, pool_size=1)
        try:
            async with engine.begin() as connection:
                await connection.execute(
                    update(User).where(User.email == email).values(role=UserRole.admin)
                )
        finally:
            await engine.dispose()

    thread = threading.Thread(target=asyncio.run, args=(promote(),))
    thread.start()
    thread.join()


@dataclass
class Caller:
    """A signed-in browser: its cookies and the CSRF header, sent with every fuzzed call.

    The fuzzed calls never change these credentials (their cookies are passed
    explicitly, and what they set is dropped), but some calls end the session
    server side (sign out, sign in again, delete the account): ``sign_in`` then
    starts a new one.
    """

    app: FastAPI
    email: str
    admin: bool
    cookies: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def sign_in(self) -> None:
        with asgi.get_client(self.app) as client:
            response = client.post("/v1/auth/dev-login", json={"email": self.email})
            assert response.status_code == 200, response.text
            self.cookies = dict(client.cookies)
        self.headers = {"X-CSRF-Token": self.cookies[CSRF_COOKIE]}
        if self.admin:
            _promote_to_admin(self.app.state.settings.database_url, self.email)


@dataclass
class ContractApi:
    app: FastAPI
    callers: dict[str, Caller | None]


def contract_settings(settings: Settings, folder: Path, **fakes: Any) -> Settings:
    """The test settings with every outside service pointed at its fake."""
    razorpay: FakeRazorpay = fakes["razorpay"]
    google: FakeGoogle = fakes["google"]
    gmail: FakeGmail = fakes["gmail"]
    openai: FakeOpenAI = fakes["openai"]
    dns: FakeDNS = fakes["dns"]
    return settings.model_copy(
        update={
            **razorpay.settings_update(),
            "gmail_client_secret": SecretStr(FAKE_CLIENT_SECRET),
            "google_auth_url": f"{google.url}/o/oauth2/v2/auth",
            "google_token_url": f"{google.url}/token",
            "google_revoke_url": f"{google.url}/revoke",
            "gmail_api_url": gmail.url,
            "gmail_retry_base_seconds": 0.001,
            "llm_base_url": openai.base_url,
            "llm_model": FAKE_MODEL,
            "llm_api_key": SecretStr(FAKE_API_KEY),
            "dns_nameservers": [dns.nameserver],
            "dns_timeout_seconds": 1.0,
            "storage_path": folder / "storage",
            "outbox_path": folder / "outbox",
            "allow_outbox_mailboxes": True,
            # Generated sign-ins would soon hit the limit and turn every later one into a 429;
            # the limiter has tests of its own.
            "signin_rate_limit": 1_000_000,
        }
    )


@pytest.fixture(scope="module")
async def contract_api(
    settings: Settings,
    engine: AsyncEngine,
    tmp_path_factory: pytest.TempPathFactory,
    fake_google_server: FakeGoogle,
    fake_gmail_server: FakeGmail,
    fake_openai_server: FakeOpenAI,
    fake_dns_server: FakeDNS,  # noqa: F811
    contract_razorpay: FakeRazorpay,
) -> AsyncIterator[ContractApi]:
    configured = contract_settings(
        settings,
        tmp_path_factory.mktemp("contract"),
        razorpay=contract_razorpay,
        google=fake_google_server,
        gmail=fake_gmail_server,
        openai=fake_openai_server,
        dns=fake_dns_server,
    )
    app = create_app(configured)  # its own engine: it runs on schemathesis's loop
    try:
        callers: dict[str, Caller | None] = {
            "anonymous": None,
            "user": Caller(app, "contract-user@example.com", admin=False),
            "admin": Caller(app, "contract-admin@example.com", admin=True),
        }
        for caller in callers.values():
            if caller is not None:
                caller.sign_in()
        yield ContractApi(app=app, callers=callers)
    finally:
        asgi.shutdown_lifespans()  # the app's lifespan: closes its engine, jobs, pools
        use_settings(settings)
        await _truncate_all(engine)
