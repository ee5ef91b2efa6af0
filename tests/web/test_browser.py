"""The web app in a real browser (Debian's Chromium through Playwright), against the
app served by uvicorn: only what a person can click and type."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from email import policy
from email.parser import BytesParser
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from playwright.async_api import Locator, Page, Route, expect

from outreach.campaign.tasks import advance_sequences, send_due_emails
from outreach.credits.pricing import Pricing
from outreach.kit.clock import Clock
from outreach.kit.db import Database
from outreach.mailbox.oauth import GMAIL_SEND
from outreach.mailbox.schemas import OutboxMailboxCreate
from outreach.mailbox.service import mailbox_service
from outreach.models import Mailbox, MailboxMode, MailboxProvider, MailboxStatus
from outreach.recipient.lists import list_service
from outreach.recipient.schemas import RecipientCreate
from outreach.template.schemas import TemplateCreate
from outreach.template.service import template_service
from tests.conftest import create_user
from tests.fakes.dns import FakeDNS
from tests.fakes.razorpay import KEY_ID, FakeRazorpay
from tests.web.browser import LiveServer, snap
from tests.web.conftest import GOOD, TEMPLATE_BODY, TEMPLATE_SUBJECT, contacts_csv

SENDER = "asha.rao@example.com"
PRICING = Pricing()


async def sign_in(
    page: Page, server: LiveServer, email: str = SENDER, *, shot: bool = False
) -> None:
    await page.goto(server.url + "/")
    await expect(page).to_have_url(re.compile(r"/sign-in"))
    if shot:
        await snap(page, "sign-in")
    await page.get_by_label("Email address").fill(email)
    await page.get_by_label("Your name (optional)").fill("Asha Rao")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name=re.compile("^Hello"))).to_be_visible()


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
    await sign_in(page, live_server, shot=True)
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
    await expect(page.locator("#preview-subject")).to_have_text("Ravi, data engineering at Acme?")
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
    # No reload: the page refreshes its counts by itself while the campaign sends.
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


async def test_a_revoked_mailbox_is_shown_and_reconnect_goes_to_google(
    page: Page, live_server: LiveServer, committing_database: Database
) -> None:
    async with committing_database.session() as session:
        user = await create_user(session, SENDER, balance=20)
        session.add(
            Mailbox(
                user_id=user.id,
                provider=MailboxProvider.gmail,
                mode=MailboxMode.send_only,
                address="asha.rao@gmail.example",
                status=MailboxStatus.revoked,
                status_reason="access was withdrawn in your Google account",
                granted_scopes=[],
            )
        )
    consent: list[str] = []

    async def google(route: Route) -> None:
        consent.append(route.request.url)
        await route.fulfill(body="<title>Google</title>Choose an account", content_type="text/html")

    await page.route("https://accounts.google.com/**", google)
    await sign_in(page, live_server)
    await page.get_by_role("link", name="Mailboxes").click()
    row = page.get_by_role("row", name=re.compile("asha.rao@gmail.example"))
    await expect(row).to_contain_text("revoked")
    await expect(row).to_contain_text("access was withdrawn in your Google account")
    await snap(page, "mailboxes-revoked")
    await row.get_by_role("button", name="Reconnect asha.rao@gmail.example").click()
    await expect(page).to_have_title("Google")
    (asked,) = [url for url in consent if "/o/oauth2/" in url]  # not the sign-in button's
    query = parse_qs(urlsplit(asked).query)
    assert query["scope"][0].split() == ["openid", "email", GMAIL_SEND]  # send-only again
    assert query["state"][0]
    assert query["redirect_uri"] == [live_server.url + "/v1/gmail/callback"]


async def test_a_list_with_bad_rows_shows_them_and_offers_them_for_download(
    page: Page, live_server: LiveServer, tmp_path: Path
) -> None:
    await sign_in(page, live_server)
    await upload_list(page, tmp_path)
    errors = page.locator("#row-errors")
    await expect(errors.get_by_role("row").nth(1)).to_contain_text("5")
    await expect(errors).to_contain_text("neha.at.acme.example")
    await expect(page.get_by_role("listitem").filter(has_text="invalid rows")).to_contain_text("1")
    async with page.expect_download() as download_info:
        await page.get_by_role("link", name="Download the row errors (CSV)").click()
    download = await download_info.value
    saved = tmp_path / "errors.csv"
    await download.save_as(saved)
    rows = list(csv.reader(io.StringIO(saved.read_text())))
    assert rows[1][0] == "5"
    assert "neha.at.acme.example" in rows[1]


async def test_scheduling_without_enough_credits_shows_the_shortfall_and_the_packs(
    page: Page, live_server: LiveServer, committing_database: Database
) -> None:
    async with committing_database.session() as session:
        user = await create_user(session, SENDER, balance=2)
        await mailbox_service.create_outbox_mailbox(
            session, user=user, data=OutboxMailboxCreate(address=SENDER)
        )
        leads = await list_service.create_list(session, user_id=user.id, name="Data leads")
        people = [RecipientCreate(email=g[0], first_name=g[1], company=g[2]) for g in GOOD]
        await list_service.add_recipients(session, recipient_list=leads, items=people)
        await template_service.create(
            session,
            user=user,
            data=TemplateCreate(name="Intro", subject=TEMPLATE_SUBJECT, body_text=TEMPLATE_BODY),
        )
    await sign_in(page, live_server)
    await page.goto(live_server.url + "/campaigns/new")
    await page.get_by_label("Campaign name").fill("Too many for my credits")
    await page.get_by_role("button", name="Preview the campaign").click()
    await expect(page.locator("#cost")).to_have_text("6")
    await page.get_by_role("button", name="Schedule 6 emails for 6 credits").click()
    await expect(page.get_by_role("alert")).to_contain_text("Not enough credits")
    await expect(page.locator("#shortfall")).to_contain_text("You are 4 credits short")
    packs = page.locator("#packs")
    await expect(packs).to_contain_text("Payments are off")
    await expect(packs.get_by_role("listitem")).to_have_count(len(PRICING.packs))
    await snap(page, "schedule-short")
    await page.get_by_role("link", name="Home").click()
    await expect(page.locator("#balance")).to_have_text("2")  # nothing was charged


async def seeded_sender(database: Database, *, balance: int) -> None:
    """A user with an outbox mailbox and the six good contacts as a ready list."""
    async with database.session() as session:
        user = await create_user(session, SENDER, balance=balance)
        await mailbox_service.create_outbox_mailbox(
            session, user=user, data=OutboxMailboxCreate(address=SENDER)
        )
        leads = await list_service.create_list(session, user_id=user.id, name="Data leads")
        people = [RecipientCreate(email=g[0], first_name=g[1], company=g[2]) for g in GOOD]
        await list_service.add_recipients(session, recipient_list=leads, items=people)


async def send_everything_due(frozen_clock: Clock, outbox: Path, expected: int) -> None:
    """The scheduler's send tick, moving the clock as time would."""
    for _ in range(60):
        await send_due_emails()
        if len(list(outbox.glob("*/*.eml"))) >= expected:
            return
        frozen_clock.freeze(frozen_clock.now() + timedelta(minutes=5))
    raise AssertionError(f"fewer than {expected} emails were sent")


async def test_follow_ups_from_an_ai_draft_to_a_reply_marked_by_hand(
    page: Page, live_server: LiveServer, committing_database: Database, frozen_clock: Clock
) -> None:
    await seeded_sender(committing_database, balance=100)
    await sign_in(page, live_server)

    await page.get_by_role("link", name="Templates").click()
    await page.get_by_role("link", name="Draft one with AI").click()
    await expect(page.locator("#writer")).to_contain_text("The built-in writer")
    await expect(page.locator("#draft-cost")).to_contain_text("A draft costs 2 credits")
    await page.get_by_label("Template name").fill("Data intro")
    await page.get_by_label("The role you want").fill("Data Engineer")
    await page.get_by_label("Tone").select_option("direct")
    await snap(page, "template-draft")
    # Once sent, the form says it is working and cannot be sent again: its state is
    # reported from a submit listener that runs after the page's own.
    busy: list[list[object]] = []

    def report_busy(state: list[object]) -> None:
        busy.append(state)

    await page.expose_function("reportBusy", report_busy)
    await page.evaluate(
        """() => {
          const form = document.querySelector("form[data-busy]");
          const button = form.querySelector("button[type=submit]");
          form.addEventListener("submit", () => window.reportBusy(
            [button.disabled, button.textContent, form.getAttribute("aria-busy")]));
        }"""
    )
    await page.get_by_role("button", name="Write the draft for 2 credits").click()
    await expect(page.get_by_role("status")).to_contain_text("Draft written and saved (2 credits)")
    await expect(page.locator("#writer")).to_contain_text("the built-in writer (no AI")
    assert busy == [[True, "Writing the draft…", "true"]]
    await expect(page.get_by_label("Subject")).to_have_value("Data Engineer: quick question")

    await page.get_by_role("link", name="Campaigns").click()
    await page.get_by_role("link", name="New campaign").click()
    await page.get_by_label("Campaign name").fill("Data leads with a nudge")
    await page.get_by_label("Minutes between two emails").fill("0")
    followup = page.locator("fieldset.followup").first
    await followup.get_by_label("Template", exact=True).select_option(label="Data intro")
    await followup.get_by_label("Business days after the previous email").fill("2")
    await page.get_by_role("button", name="Preview the campaign").click()
    # Refused: the API's own words, how to fix it here, focus on the message, form kept.
    alert = page.get_by_role("alert")
    await expect(alert).to_contain_text("This mailbox cannot see replies")
    await expect(alert).to_contain_text("follow-ups would reach people who already answered")
    await expect(page.locator("#reply-detection-fix")).to_be_visible()
    await expect(page.locator("#problem")).to_be_focused()
    await expect(page.get_by_label("Campaign name")).to_have_value("Data leads with a nudge")
    await expect(followup.get_by_label("Template", exact=True)).to_have_value(re.compile(".+"))
    await expect(followup.get_by_label("Business days after the previous email")).to_have_value("2")
    await snap(page, "campaign-new-refused")
    await page.get_by_label("Send follow-ups even though this mailbox cannot see replies").check()
    await page.get_by_role("button", name="Preview the campaign").click()

    await expect(page.locator("#to-send")).to_have_text("6")
    await expect(page.locator("#cost")).to_have_text("12")
    await expect(page.locator("#followup-plan")).to_contain_text(
        "Follow-up 1 (Data intro): 2 business days after the first email went out"
    )
    await expect(page.locator("#checks")).to_contain_text("is the file outbox")
    await expect(page.locator("#first-send")).to_have_text("25 Nov 2026, 09:00 UTC")
    await snap(page, "campaign-review-followups")
    await page.get_by_role("button", name="Schedule 6 people (12 emails) for 12 credits").click()
    await expect(page.locator("#count-waiting")).to_have_text("6")

    await send_everything_due(frozen_clock, live_server.settings.outbox_path, 6)
    await expect(page.locator("#count-sent")).to_have_text("6")  # the live refresh
    assert await advance_sequences() == 6  # the follow-ups get their time and thread
    ravi = GOOD[0][0]
    await page.get_by_label("Their email address").fill(ravi)
    await page.get_by_role("button", name="Mark as replied").click()
    await expect(page.get_by_role("status")).to_contain_text(
        "Marked as replied; 1 follow-up(s) cancelled and refunded."
    )
    statuses = page.locator("#timeline tbody .status")
    await expect(statuses).to_have_text(["sent", "replied", "cancelled"])
    await snap(page, "timeline")
    await page.get_by_role("link", name="Back to Data leads with a nudge").click()
    await expect(page.locator("#answer-replied")).to_have_text("1")
    first = page.locator("#step-stats").get_by_role("row", name=re.compile("^First email"))
    await expect(first).to_contain_text("6")
    await snap(page, "campaign-answers")
    await page.get_by_role("link", name="Home").click()
    await expect(page.locator("#balance")).to_have_text(str(100 - 2 - 12 + 1))  # one refunded


async def tab_to(page: Page, target: Locator, limit: int = 80) -> None:
    """Press Tab until ``target`` has the focus (it is in the tab order), and check the
    focus ring shows."""
    for _ in range(limit):
        await page.keyboard.press("Tab")
        if await target.evaluate("el => el === document.activeElement"):
            ring = await target.evaluate(
                "el => [getComputedStyle(el).outlineStyle, getComputedStyle(el).outlineWidth]"
            )
            assert ring[0] != "none", ring
            assert float(ring[1].removesuffix("px")) >= 2, ring
            return
    raise AssertionError(f"{target} cannot be reached with the Tab key")


async def test_the_pages_work_with_the_keyboard_alone(page: Page, live_server: LiveServer) -> None:
    await page.goto(live_server.url + "/sign-in")
    await page.keyboard.press("Tab")  # the first stop: skip to the content
    skip = page.get_by_role("link", name="Skip to content")
    await expect(skip).to_be_focused()
    assert (await skip.bounding_box() or {"x": -1})["x"] >= 0  # shown when focused
    await page.keyboard.press("Enter")
    await expect(page.locator("#main")).to_be_focused()

    await tab_to(page, page.get_by_label("Email address"))
    await page.keyboard.type(SENDER)
    await tab_to(page, page.get_by_label("Your name (optional)"))
    await page.keyboard.type("Asha Rao")
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="Hello, Asha Rao")).to_be_visible()

    await tab_to(page, page.get_by_role("link", name="Mailboxes"))
    await page.keyboard.press("Enter")
    await tab_to(page, page.locator("#o-address"))
    await page.keyboard.type(SENDER)
    await tab_to(page, page.get_by_role("button", name="Add outbox"))
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("cell", name=re.compile("Outbox"))).to_be_visible()

    await tab_to(page, page.get_by_role("link", name="Templates"))
    await page.keyboard.press("Enter")
    await tab_to(page, page.get_by_role("link", name="New template"))
    await page.keyboard.press("Enter")
    await tab_to(page, page.get_by_label("Template name"))
    await page.keyboard.type("Keyboard intro")
    await tab_to(page, page.get_by_label("Subject"))
    await page.keyboard.type("Hello")
    await tab_to(page, page.get_by_label("Email text"))
    await page.keyboard.type("Hi, I admire ")
    await tab_to(page, page.get_by_role("button", name="company", exact=True))
    await page.keyboard.press("Enter")  # the picker puts {{ company }} at the cursor
    await expect(page.get_by_label("Email text")).to_have_value("Hi, I admire {{ company }}")
    await expect(page.get_by_label("Email text")).to_be_focused()
    await tab_to(page, page.get_by_role("button", name="Save template"))
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("status")).to_contain_text("Saved as version 1")

    await tab_to(page, page.get_by_role("link", name="Campaigns"))
    await page.keyboard.press("Enter")
    await tab_to(page, page.get_by_role("link", name="New campaign"))
    await page.keyboard.press("Enter")
    await tab_to(page, page.get_by_label("Campaign name"))
    await page.keyboard.type("Keyboard campaign")
    saturday = page.get_by_label("Sat")
    await tab_to(page, saturday)
    await page.keyboard.press("Space")
    await expect(saturday).to_be_checked()
    await tab_to(page, page.get_by_role("button", name="Preview the campaign"))
    await page.keyboard.press("Enter")  # no list yet: refused, said, and the form kept
    await expect(page.locator("#problem")).to_be_focused()
    await expect(page.get_by_label("Campaign name")).to_have_value("Keyboard campaign")
    await expect(page.get_by_label("Sat")).to_be_checked()


async def test_enrichment_shows_what_it_holds_then_what_it_found(
    page: Page,
    live_server: LiveServer,
    committing_database: Database,
    fake_dns: FakeDNS,
    tmp_path: Path,
) -> None:
    fake_dns.add_mx("acme.com", "mx.acme.com")
    async with committing_database.session() as session:
        await create_user(session, SENDER, balance=100)
    await sign_in(page, live_server)
    await upload_list(page, tmp_path)
    ahead = page.locator("#enrich-cost-ahead")
    await expect(ahead).to_contain_text("each of the 6 companies")
    await expect(ahead).to_contain_text("Starting holds 36 credits")
    await snap(page, "list-enrich")
    await page.get_by_role("button", name="Find addresses for up to 36 credits").click()
    await expect(page.locator("#enrich-status")).to_have_text("completed")
    await expect(page.locator("#enrich-found")).to_have_text("3")
    await expect(page.locator("#enrich-cost")).to_have_text("6")
    await expect(page.locator("#enrich-results")).to_contain_text("careers@acme.com")
    await snap(page, "list-enriched")
    await page.get_by_role("link", name="Home").click()
    await expect(page.locator("#balance")).to_have_text("94")


# Razorpay Checkout, as the page loads it, played by the test: `open()` asks the test
# to make the payment (as the customer would in Razorpay's window) and hands the
# signed answer to the page's handler, as Checkout does.
CHECKOUT_STAND_IN = """
window.Razorpay = function (options) {
  this.open = async () => {
    const answer = await window.payWithRazorpay(options);
    options.handler(answer);
  };
};
"""


async def test_buying_a_pack_with_test_keys_goes_through_checkout_and_adds_the_credits(
    page: Page, paying_server: LiveServer, fake_razorpay: FakeRazorpay
) -> None:
    seen: list[dict[str, object]] = []

    def pay(options: dict[str, object]) -> dict[str, str]:
        seen.append(options)
        order_id = str(options["order_id"])
        payment = fake_razorpay.pay(order_id)
        return fake_razorpay.checkout_response(order_id, payment["id"])

    async def checkout_script(route: Route) -> None:
        await route.fulfill(body=CHECKOUT_STAND_IN, content_type="application/javascript")

    await page.expose_function("payWithRazorpay", pay)
    await page.route("https://checkout.razorpay.com/**", checkout_script)
    await sign_in(page, paying_server)
    await page.get_by_role("link", name="Credits").click()
    packs = page.locator("#packs")
    await expect(packs).not_to_contain_text("Payments are off")
    await expect(packs).to_contain_text("Your first purchase gets 20% extra credits")
    await snap(page, "credits")
    await packs.get_by_role("button", name="Buy 100 credits").click()
    await expect(page.locator(".big")).to_have_text("140")  # 20 + 100 + the 20 % bonus
    (options,) = seen
    assert options["key"] == KEY_ID
    assert options["amount"] == PRICING.packs[0].amount_paise
    assert str(options["order_id"]).startswith("order_")
    await expect(page.get_by_role("table")).to_contain_text("purchase")
