"""Every page without a browser (httpx over ASGI): it renders, it asks strangers to sign
in, its forms refuse a request without the CSRF token, and a refusal is shown in words
with the form as typed."""

from __future__ import annotations

import re
import uuid
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.config import Settings
from outreach.demo import samples
from outreach.models import Mailbox, Template, User
from outreach.web.pages import account
from tests.conftest import wait_for_jobs
from tests.web.conftest import (
    TEMPLATE_BODY,
    TEMPLATE_SUBJECT,
    contacts_csv,
    csrf_of,
    schedule_page,
    sign_in_page,
)

PAGES = [
    "/",
    "/mailboxes",
    "/resume",
    "/lists",
    "/templates",
    "/templates/new",
    "/campaigns",
    "/campaigns/new",
    "/credits",
    "/settings",
    "/suppressions",
]
FORMS = [
    "/sign-out",
    "/mailboxes/outbox",
    "/mailboxes/smtp",
    "/mailboxes/gmail",
    "/resume",
    "/resume/analyze",
    "/lists",
    "/templates",
    "/templates-preview",
    "/campaigns",
    "/settings/delete",
    "/suppressions",
]


async def count(session: AsyncSession, model: type) -> int:
    return int(await session.scalar(select(func.count()).select_from(model)) or 0)


def labelled(path: str, html: str) -> None:
    """Every input is labelled: each id an input carries has a <label for=…>."""
    ids = re.findall(r'<(?:input|select|textarea)[^>]*\bid="([^"]+)"', html)
    for input_id in ids:
        assert f'for="{input_id}"' in html, f"{path}: #{input_id} has no label"
    assert len(ids) == len(set(ids)), f"{path}: an id is used twice"


async def test_every_page_renders_for_a_signed_in_user(web_client: httpx.AsyncClient) -> None:
    await sign_in_page(web_client)
    for path in PAGES:
        response = await web_client.get(path)
        assert response.status_code == 200, (path, response.text)
        assert response.headers["content-type"].startswith("text/html")
        assert "asha.rao@example.com" in response.text  # the layout knows who is signed in
        labelled(path, response.text)


async def test_a_stranger_is_sent_to_sign_in(web_client: httpx.AsyncClient) -> None:
    for path in PAGES:
        response = await web_client.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"] == f"/sign-in?next={quote(path)}"
    sign_in = await web_client.get("/sign-in")
    labelled("/sign-in", sign_in.text)


async def test_a_form_without_the_csrf_token_is_refused(
    web_client: httpx.AsyncClient, session: AsyncSession
) -> None:
    await sign_in_page(web_client)
    data = {"address": "asha.rao@example.com", "name": "x", "subject": "s", "body_text": "b"}
    for path in FORMS:
        for token in ({}, {"csrf_token": "not-the-token"}):
            response = await web_client.post(path, data={**data, **token})
            assert response.status_code == 403, path
            assert "text/html" in response.headers["content-type"]
            assert "Cross-site request refused" in response.text
            assert "Traceback" not in response.text
    assert await count(session, Mailbox) == 0
    assert await count(session, Template) == 0
    assert (await web_client.get("/")).status_code == 200  # still signed in


async def test_a_form_from_another_site_is_refused(
    web_client: httpx.AsyncClient, session: AsyncSession
) -> None:
    token = await sign_in_page(web_client)
    response = await web_client.post(
        "/mailboxes/outbox",
        data={"csrf_token": token, "address": "asha.rao@example.com"},
        headers={"Origin": "https://evil.example"},
    )
    assert response.status_code == 403
    assert "requests from https://evil.example are not allowed" in response.text
    assert await count(session, Mailbox) == 0


async def test_a_refused_form_shows_the_problem_and_keeps_what_was_typed(
    web_client: httpx.AsyncClient, session: AsyncSession
) -> None:
    token = await sign_in_page(web_client)
    typed = {
        "csrf_token": token,
        "address": "asha.rao@example.com",
        "display_name": "Asha Rao",
        "host": "smtp example.com",  # a space: not a host name
        "username": "asha",
        "password": "secret-password-123",
    }
    response = await web_client.post("/mailboxes/smtp", data=typed)
    assert response.status_code == 422
    assert 'role="alert"' in response.text
    assert "host: String should match pattern" in response.text
    assert 'value="smtp example.com"' in response.text
    assert 'value="Asha Rao"' in response.text
    assert "secret-password-123" not in response.text  # a password is never typed back
    assert await count(session, Mailbox) == 0


async def test_a_missing_thing_is_a_page_in_words(web_client: httpx.AsyncClient) -> None:
    await sign_in_page(web_client)
    missing = uuid.uuid4()
    response = await web_client.get(f"/campaigns/{missing}")
    assert response.status_code == 404
    assert "text/html" in response.headers["content-type"]
    assert f"no campaign {missing}" in response.text


async def test_sign_in_goes_back_to_the_page_asked_for_and_sign_out_ends_the_session(
    web_client: httpx.AsyncClient,
) -> None:
    response = await web_client.post(
        "/sign-in/dev", data={"email": "asha.rao@example.com", "next": "/credits"}
    )
    assert response.headers["location"] == "/credits"
    open_redirect = await web_client.post(
        "/sign-in/dev", data={"email": "asha.rao@example.com", "next": "//evil.example/"}
    )
    assert open_redirect.headers["location"] == "/"
    home = await web_client.get("/")
    signed_out = await web_client.post("/sign-out", data={"csrf_token": csrf_of(home)})
    assert signed_out.status_code == 303
    assert (await web_client.get("/")).status_code == 303


async def test_a_bad_address_at_sign_in_is_shown_with_the_form(
    web_client: httpx.AsyncClient,
) -> None:
    response = await web_client.post("/sign-in/dev", data={"email": "not-an-address"})
    assert response.status_code == 422
    assert 'value="not-an-address"' in response.text
    assert "email" in response.text


async def upload_and_template(client: httpx.AsyncClient, token: str) -> tuple[str, str]:
    uploaded = await client.post(
        "/lists",
        data={"csrf_token": token, "name": "Data leads"},
        files={"file": ("leads.csv", contacts_csv(), "text/csv")},
    )
    assert uploaded.status_code == 303, uploaded.text
    await wait_for_jobs()
    list_id = uploaded.headers["location"].rsplit("/", 1)[1]
    created = await client.post(
        "/templates",
        data={
            "csrf_token": token,
            "name": "Intro",
            "subject": TEMPLATE_SUBJECT,
            "body_text": TEMPLATE_BODY,
            "list_id": list_id,
        },
    )
    assert created.status_code == 303, created.text
    return list_id, created.headers["location"]


async def test_the_list_template_and_campaign_pages_render_with_data(
    web_client: httpx.AsyncClient,
) -> None:
    token = await sign_in_page(web_client)
    await web_client.post(
        "/mailboxes/outbox", data={"csrf_token": token, "address": "asha.rao@example.com"}
    )
    list_id, template_url = await upload_and_template(web_client, token)
    page = await web_client.get(f"/lists/{list_id}")
    assert "Rows that were not imported" in page.text
    assert "neha.at.acme.example" in page.text
    # Verification says what it costs before anything is charged.
    assert "costs up to <strong>6</strong> credits" in page.text
    assert "You have 20." in page.text
    editor = await web_client.get(template_url)
    assert 'id="preview-subject">Ravi, data engineering at Acme?<' in editor.text
    assert "unsubscribe here: http://testserver/u/" in editor.text  # the footer, as sent
    wizard = (await web_client.get("/campaigns/new")).text
    chosen = {
        name: re.search(rf'name="{name}">\s*<option value="([^"]+)"', wizard).group(1)  # type: ignore[union-attr]
        for name in ("mailbox_id", "list_id", "template_id")
    }
    created = await web_client.post(
        "/campaigns",
        data={"csrf_token": token, "name": "Leads", "window_days": ["0", "1", "2"], **chosen},
    )
    assert created.status_code == 303, created.text
    review = await web_client.get(created.headers["location"])
    assert 'id="to-send">6<' in review.text
    assert 'id="cost">6<' in review.text
    campaign_url = created.headers["location"].removesuffix("/review")
    page = await web_client.get(campaign_url)
    assert page.status_code == 200
    assert 'id="campaign-status">draft<' in page.text


async def test_the_live_preview_shows_a_template_problem_in_words(
    web_client: httpx.AsyncClient,
) -> None:
    token = await sign_in_page(web_client)
    response = await web_client.post(
        "/templates-preview",
        data={"csrf_token": token, "subject": "Hi {{ first_name", "body_text": "Hello"},
    )
    assert response.status_code == 200
    assert 'role="alert"' in response.text
    assert "The template is not allowed" in response.text
    assert "Traceback" not in response.text


async def test_a_template_the_sandbox_refuses_keeps_the_text_typed(
    web_client: httpx.AsyncClient, session: AsyncSession
) -> None:
    token = await sign_in_page(web_client)
    typed = {"csrf_token": token, "name": "Bad", "subject": "Hi", "body_text": "{{ x.__class__ }}"}
    response = await web_client.post("/templates", data=typed)
    assert response.status_code == 422
    assert "{{ x.__class__ }}</textarea>" in response.text
    assert await count(session, Template) == 0


async def test_the_resume_report_shows_the_score_bars_and_what_the_ats_saw(
    web_client: httpx.AsyncClient,
) -> None:
    token = await sign_in_page(web_client)
    kind = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    uploaded = await web_client.post(
        "/resume",
        data={"csrf_token": token},
        files={"file": ("asha-rao-resume.docx", samples.resume_docx(), kind)},
    )
    assert uploaded.status_code == 303, uploaded.text
    page = await web_client.get("/resume")
    assert "This check is free" in page.text
    analysed = await web_client.post(
        "/resume/analyze", data={"csrf_token": token, "target_role": "Data Engineer"}
    )
    assert analysed.status_code == 303, analysed.text
    report = await web_client.get("/resume")
    assert 'id="report"' in report.text
    assert "ATS report for Data Engineer" in report.text
    assert 'class="bar"' in report.text
    assert "What the ATS saw" in report.text
    assert "asha-rao-resume.docx" in report.text  # the history


async def test_deleting_the_account_asks_first_then_deletes_and_signs_out(
    web_client: httpx.AsyncClient, session: AsyncSession
) -> None:
    token = await sign_in_page(web_client)
    asked = await web_client.post("/settings/delete", data={"csrf_token": token})
    assert asked.status_code == 200
    assert "Yes, delete my account" in asked.text
    assert "your 20 credits" in asked.text
    confirm = re.search(r'name="confirm" value="([^"]+)"', asked.text)
    assert confirm is not None
    deleted = await web_client.post(
        "/settings/delete", data={"csrf_token": token, "confirm": confirm.group(1)}
    )
    assert deleted.status_code == 303
    assert deleted.headers["location"] == "/sign-in?deleted=1"
    assert (await web_client.get("/")).status_code == 303
    emails = set(await session.scalars(select(User.email)))
    assert "asha.rao@example.com" not in emails  # erased, not just signed out


async def test_a_campaign_is_scheduled_paused_resumed_and_cancelled_from_its_page(
    web_client: httpx.AsyncClient,
) -> None:
    token = await sign_in_page(web_client)
    await web_client.post(
        "/mailboxes/outbox", data={"csrf_token": token, "address": "asha.rao@example.com"}
    )
    await upload_and_template(web_client, token)
    wizard = (await web_client.get("/campaigns/new")).text
    chosen = {
        name: re.search(rf'name="{name}">\s*<option value="([^"]+)"', wizard).group(1)  # type: ignore[union-attr]
        for name in ("mailbox_id", "list_id", "template_id")
    }
    created = await web_client.post(
        "/campaigns", data={"csrf_token": token, "name": "Leads", "window_days": "2", **chosen}
    )
    campaign_url = created.headers["location"].removesuffix("/review")
    scheduled = await schedule_page(web_client, campaign_url, token)
    assert scheduled.headers["location"] == campaign_url
    await wait_for_jobs()
    for action, status in (("pause", "paused"), ("resume", "scheduled"), ("cancel", "cancelled")):
        done = await web_client.post(f"{campaign_url}/{action}", data={"csrf_token": token})
        assert done.status_code == 303, done.text
        page = await web_client.get(campaign_url)
        assert f'id="campaign-status">{status}<' in page.text
    assert 'id="count-cancelled">6<' in page.text
    home = await web_client.get("/")
    assert 'id="balance">20<' in home.text  # the six credits came back
    again = await web_client.post(f"{campaign_url}/resume", data={"csrf_token": token})
    assert again.status_code == 409
    assert "a cancelled campaign is not paused" in again.text


async def test_a_suppression_is_added_shown_and_removed(web_client: httpx.AsyncClient) -> None:
    token = await sign_in_page(web_client)
    added = await web_client.post(
        "/suppressions", data={"csrf_token": token, "value": "old.contact@globex.example"}
    )
    assert added.status_code == 303, added.text
    page = await web_client.get("/suppressions")
    assert "Remove old.contact@globex.example" in page.text
    found = re.search(r'action="(/suppressions/[^"]+/remove)"', page.text)
    assert found is not None
    removed = await web_client.post(found.group(1), data={"csrf_token": token})
    assert removed.status_code == 303
    assert "old.contact@globex.example" not in (await web_client.get("/suppressions")).text


async def test_an_unexpected_failure_is_a_page_in_words_with_its_reference(
    web_client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    await sign_in_page(web_client)

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("internal detail nobody should see")

    monkeypatch.setattr(account, "onboarding_status", broken)
    response = await web_client.get("/")
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("text/html")
    assert "Something went wrong" in response.text
    assert f"quote {response.headers['x-request-id']}" in response.text
    for leak in ("Traceback", "RuntimeError", "internal detail"):
        assert leak not in response.text


async def test_an_upload_over_the_size_limit_is_refused_in_words(
    web_client: httpx.AsyncClient, web_settings: Settings
) -> None:
    token = await sign_in_page(web_client)
    huge = b"email\n" + b"x@example.com\n" * (web_settings.max_body_bytes // 14 + 1)
    response = await web_client.post(
        "/lists", data={"csrf_token": token}, files={"file": ("big.csv", huge, "text/csv")}
    )
    assert response.status_code == 413
    assert "text/html" in response.headers["content-type"]
    assert f"the request body is larger than {web_settings.max_body_bytes} bytes" in response.text
