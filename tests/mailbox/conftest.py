"""Mailbox fixtures: settings pointing at the fake Google/Gmail, the app built with them,
a real local SMTP server (aiosmtpd) with STARTTLS and AUTH, and helpers."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.config import Settings, use_settings
from outreach.kit.clock import utcnow
from outreach.kit.db import Database
from outreach.mailbox.http import close_google_http
from outreach.mailbox.oauth import GMAIL_COMPOSE, GMAIL_METADATA, GMAIL_SEND
from outreach.mailbox.service import mailbox_service
from outreach.models import Campaign, Mailbox, MailboxMode, ScheduledEmail, User
from outreach.models.campaign import CampaignStatus, EmailStatus
from tests.conftest import _started_app, make_client
from tests.fakes.gmail import FakeGmail
from tests.fakes.google import FakeGoogle
from tests.fakes.google_oauth import FAKE_CLIENT_SECRET, Grant

SMTP_USER, SMTP_PASSWORD = "mailer@example.com", "correct horse battery"
FULL_SCOPES = ["openid", "email", GMAIL_COMPOSE, GMAIL_METADATA]
SEND_ONLY_SCOPES = ["openid", "email", GMAIL_SEND]


@pytest.fixture(scope="session", autouse=True)
async def _close_google_http() -> AsyncIterator[None]:
    yield
    await close_google_http()


@pytest.fixture(scope="session")
def smtp_tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, Path]:
    """A self-signed certificate for 127.0.0.1: the server's context and the CA file."""
    key = ec.generate_private_key(ec.SECP256R1())  # fast to make, unlike RSA
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("smtp-tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context, cert_path


@dataclass
class SmtpRecorder:
    messages: list[Envelope] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        self.messages.append(envelope)
        return "250 Message accepted for delivery"


def _authenticator(recorder: SmtpRecorder) -> Any:
    def authenticate(
        server: Any, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if isinstance(data, LoginPassword):
            recorder.logins.append(data.login.decode())
            if data.login.decode() == SMTP_USER and data.password.decode() == SMTP_PASSWORD:
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    return authenticate


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class SmtpServer:
    port: int
    recorder: SmtpRecorder
    ca_file: Path


@pytest.fixture(scope="session")
def smtp_server(smtp_tls: tuple[ssl.SSLContext, Path]) -> Iterator[SmtpServer]:
    """aiosmtpd on 127.0.0.1: STARTTLS required before AUTH, one valid login."""
    context, ca_file = smtp_tls
    recorder = SmtpRecorder()
    controller = Controller(
        recorder,
        hostname="127.0.0.1",
        port=_free_port(),
        tls_context=context,
        require_starttls=True,
        authenticator=_authenticator(recorder),
        auth_require_tls=True,
    )
    controller.start()
    try:
        yield SmtpServer(port=controller.port, recorder=recorder, ca_file=ca_file)
    finally:
        controller.stop()


@pytest.fixture
def smtp(smtp_server: SmtpServer) -> SmtpServer:
    smtp_server.recorder.messages.clear()
    smtp_server.recorder.logins.clear()
    return smtp_server


@pytest.fixture(autouse=True)
def mailbox_settings(
    settings: Settings,
    fake_google: FakeGoogle,
    fake_gmail: FakeGmail,  # noqa: F811
    tmp_path: Path,
    smtp_tls: tuple[ssl.SSLContext, Path],
) -> Iterator[Settings]:
    """Every mailbox test talks to the fakes only (autouse: nothing reaches Google)."""
    configured = settings.model_copy(
        update={
            "gmail_client_secret": SecretStr(FAKE_CLIENT_SECRET),
            "google_auth_url": f"{fake_google.url}/o/oauth2/v2/auth",
            "google_token_url": f"{fake_google.url}/token",
            "google_revoke_url": f"{fake_google.url}/revoke",
            "gmail_api_url": fake_gmail.url,
            "gmail_retry_base_seconds": 0.001,
            "frontend_url": "http://frontend.test/settings/mailboxes",
            "outbox_path": tmp_path / "outbox",
            "allow_outbox_mailboxes": True,
            "smtp_allow_private_hosts": True,
            "smtp_ca_file": smtp_tls[1],
        }
    )
    use_settings(configured)
    yield configured
    use_settings(settings)


@pytest.fixture
async def app(mailbox_settings: Settings, database: Database) -> AsyncIterator[FastAPI]:
    async for started in _started_app(mailbox_settings, database):
        yield started


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(app) as client:
        yield client


async def connect_gmail(
    client: httpx.AsyncClient,
    fake_google: FakeGoogle,
    *,
    mode: str = "full",
    email: str = "asha.rao@gmail.com",
    scopes: list[str] | None = None,
) -> httpx.Response:
    """The whole browser dance: /connect → Google's consent (fake) → our callback."""
    fake_google.oauth.consent_as(email=email, scopes=scopes)
    start = await client.get("/v1/gmail/connect", params={"mode": mode})
    assert start.status_code == 200, start.text
    async with httpx.AsyncClient() as browser:
        consent = await browser.get(start.json()["authorization_url"])
    assert consent.status_code == 302, consent.text
    back = urlsplit(consent.headers["location"])
    return await client.get(f"{back.path}?{back.query}")


def redirect_query(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 303, response.text
    location = urlsplit(response.headers["location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == (
        "http://frontend.test/settings/mailboxes"
    )
    return {key: values[0] for key, values in parse_qs(location.query).items()}


async def gmail_mailbox(
    session: AsyncSession,
    fake_google: FakeGoogle,
    user: User,
    *,
    email: str = "asha.rao@gmail.com",
    mode: MailboxMode = MailboxMode.full,
) -> tuple[Mailbox, Grant]:
    """A connected Gmail mailbox without the browser dance (a grant issued by the fake)."""
    scopes = FULL_SCOPES if mode == MailboxMode.full else SEND_ONLY_SCOPES
    grant = fake_google.oauth.issue_grant(email=email, scopes=scopes)
    mailbox = await mailbox_service.store_gmail_grant(
        session,
        user=user,
        address=email,
        mode=mode,
        google_sub=grant.sub,
        refresh_token=grant.refresh_token,
        access_token=fake_google.oauth.issue_access_token(grant),
        expires_in=3599,
        scopes=grant.scopes,
    )
    return mailbox, grant


async def watched_mailbox(
    session: AsyncSession,
    fake_google: FakeGoogle,
    user: User,
    address: str,
    *,
    threads: int = 2,
    sent_days_ago: int = 1,
    history_id: str | None = None,
    mode: MailboxMode = MailboxMode.full,
) -> Mailbox:
    """A connected Gmail mailbox with ``threads`` campaign emails sent from it (in the
    database only: Gmail answers 404 for their threads, as for threads the user deleted)."""
    from tests.campaign.conftest import make_template

    mailbox, _ = await gmail_mailbox(session, fake_google, user, email=address, mode=mode)
    mailbox.history_id = history_id
    campaign = Campaign(
        user_id=user.id,
        name=f"to {address}",
        mailbox_id=mailbox.id,
        template_id=await make_template(session, user),
        start_at=utcnow(),
        status=CampaignStatus.sending,
        template_version=1,
    )
    session.add(campaign)
    await session.flush()
    sent_at = utcnow() - dt.timedelta(days=sent_days_ago)
    if threads:
        await session.execute(
            insert(ScheduledEmail),
            [
                {
                    "id": uuid.uuid4(),
                    "campaign_id": campaign.id,
                    "user_id": user.id,
                    "mailbox_id": mailbox.id,
                    "to_address": f"lead{n}@firm{n}.com",
                    "status": EmailStatus.sent,
                    "due_at": sent_at,
                    "sent_at": sent_at,
                    "subject": "Hello",
                    "body_text": "Hi",
                    "rfc822_message_id": f"<{uuid.uuid4().hex}@gmail.com>",
                    "thread_id": f"{address.split('@')[0]}-t{n}",
                    "attempts": 1,
                    "refunded": False,
                }
                for n in range(threads)
            ],
        )
    await session.flush()
    return mailbox
