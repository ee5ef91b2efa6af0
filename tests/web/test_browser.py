"""The web app in a real browser (Debian's Chromium through Playwright), against the
app served by uvicorn: only what a person can click and type."""

from __future__ import annotations

import re
from datetime import timedelta
from email import policy
from email.parser import BytesParser
from pathlib import Path

from playwright.async_api import Page, expect

from outreach.campaign.tasks import send_due_emails
from outreach.kit.clock import Clock
from tests.web.browser import LiveServer, snap
from tests.web.conftest import GOOD, TEMPLATE_BODY, TEMPLATE_SUBJECT, contacts_csv

SENDER = "asha.rao@example.com"


async def sign_in(page: Page, server: LiveServer, email: str = SENDER) -> None:
    await page.goto(server.url + "/")
    await expect(page).to_have_url(re.compile(r"/sign-in"))
    await snap(page, "sign-in")
    await page.get_by_label("Email address").fill(email)
    await page.get_by_label("Your name (optional)").fill("Asha Rao")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Hello, Asha Rao")).to_be_visible()


async def upload_list(page: Page, tmp_path: Path) -> None:
    leads = tmp_path / "leads.csv"
    leads.write_bytes(contacts_csv())
    await page.get_by_role("link", name="Lists").click()
    await page.get_by_label("File").set_input_files(leads)
    await page.get_by_label("Name for the list (optional)").fill("Data leads")
    await page.get_by_role("button", name="Upload").click()
    await expect(page.locator("#list-status")).to_have_text("ready")


async def test_the_whole_journey_ends_with_six_emails_in_the_outbox(
    page: Page, live_server: LiveServer, frozen_clock: Clock, tmp_path: Path
) -> None:
    await sign_in(page, live_server)
    await expect(page.locator("#balance")).to_have_text("20")
    await snap(page, "home")

    await page.get_by_role("link", name="Mailboxes").click()
    await page.locator("#o-address").fill(SENDER)
    await page.locator("#o-display_name").fill("Asha Rao")
    await page.get_by_role("button", name="Add outbox").click()
    await expect(page.get_by_role("cell", name=re.compile("Outbox"))).to_be_visible()
    await snap(page, "mailboxes")

    await upload_list(page, tmp_path)
    row_errors = page.locator("#row-errors")
    await expect(row_errors).to_contain_text("neha.at.acme.example")
    await snap(page, "list")

    await page.get_by_role("link", name="Templates").click()
    await page.get_by_role("link", name="New template").click()
    await page.get_by_label("Template name").fill("Data intro")
    await page.get_by_label("Subject").fill(TEMPLATE_SUBJECT)
    await page.get_by_label("Email text").fill(TEMPLATE_BODY)
    await page.get_by_label("List", exact=True).select_option(label="Data leads")
    # The live preview renders the unsaved text for the list's first row, footer included.
    await expect(page.locator("#preview-subject")).to_have_text(
        "Ravi, data engineering at Acme?"
    )
    await expect(page.locator("#preview-text")).to_contain_text("unsubscribe")
    await page.get_by_role("button", name="company", exact=True).click()
    await page.get_by_role("button", name="Save template").click()
    await expect(page.get_by_role("status")).to_contain_text("Saved")
    await snap(page, "template")

    await page.get_by_role("link", name="Campaigns").click()
    await page.get_by_role("link", name="New campaign").click()
    await page.get_by_label("Campaign name").fill("Data engineering leads")
    await page.get_by_label("Minutes between two emails").fill("0")
    await snap(page, "campaign-new")
    await page.get_by_role("button", name="Preview the campaign").click()
    await expect(page.locator("#to-send")).to_have_text("6")
    await expect(page.locator("#cost")).to_have_text("6")
    await snap(page, "campaign-review")
    await page.get_by_role("button", name="Schedule 6 emails for 6 credits").click()
    await expect(page.locator("#count-pending")).to_have_text("0")
    await expect(page.locator("#count-ready")).to_have_text("6")

    outbox = live_server.settings.outbox_path
    for _ in range(30):  # the scheduler's send tick, moving the clock as time would
        await send_due_emails()
        if len(list(outbox.glob("*/*.eml"))) >= 6:
            break
        frozen_clock.freeze(frozen_clock.now() + timedelta(minutes=5))
    await page.reload()
    await expect(page.locator("#count-sent")).to_have_text("6")
    await snap(page, "campaign")

    files = sorted(outbox.glob("*/*.eml"))
    assert len(files) == 6
    messages = [BytesParser(policy=policy.strict).parsebytes(f.read_bytes()) for f in files]
    assert sorted(m["To"].addresses[0].addr_spec for m in messages) == sorted(g[0] for g in GOOD)
    for message in messages:
        assert message["From"].addresses[0].addr_spec == SENDER
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    await page.get_by_role("link", name="Home").click()
    await expect(page.locator("#balance")).to_have_text("14")
