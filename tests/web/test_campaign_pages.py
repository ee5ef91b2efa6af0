"""The campaign pages without a browser: the wizard's follow-ups (refused for a mailbox
that cannot see replies unless the user opts in, with the form kept), the review page
built on the outreach plan, and the campaign page's answers per step, a recipient's
timeline and "mark as replied"."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from email import policy
from email.parser import BytesParser

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.campaign.sending import prepare_campaign_emails, send_due_emails
from outreach.campaign.sequences import advance_sequences
from outreach.campaign.service import campaign_service
from outreach.config import Settings
from outreach.kit.clock import Clock
from outreach.kit.db import Database
from outreach.models import Campaign, Mailbox, MailboxStatus, User
from outreach.models.campaign import EmailStatus, ScheduledEmail
from tests.web.conftest import GOOD, schedule_page, sign_in_page
from tests.web.test_pages import upload_and_template

SENDER = "asha.rao@example.com"


def chosen(wizard: str, *names: str) -> dict[str, str]:
    """The first option of each named select of the wizard."""
    found = {}
    for name in names:
        match = re.search(rf'name="{name}">\s*<option value="([^"]+)"', wizard)
        assert match, name
        found[name] = match.group(1)
    return found


async def wizard_ready(client: httpx.AsyncClient) -> tuple[str, dict[str, str]]:
    """Signed in with an outbox mailbox, the sample list and a template."""
    token = await sign_in_page(client)
    added = await client.post("/mailboxes/outbox", data={"csrf_token": token, "address": SENDER})
    assert added.status_code == 303, added.text
    await upload_and_template(client, token)
    wizard = (await client.get("/campaigns/new")).text
    return token, chosen(wizard, "mailbox_id", "list_id", "template_id")


async def campaigns(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.count()).select_from(Campaign)) or 0)


async def test_the_wizard_says_which_mailboxes_see_replies(
    web_client: httpx.AsyncClient,
) -> None:
    await wizard_ready(web_client)
    wizard = (await web_client.get("/campaigns/new")).text
    assert f"{SENDER} (development outbox; cannot see replies)" in wizard
    assert "Only a Gmail mailbox connected with <strong>full access</strong>" in wizard
    for n in (1, 2, 3):
        assert f'name="step{n}_template_id"' in wizard
        assert f'id="f-step{n}_delay" name="step{n}_delay" type="number" value="4"' in wizard
    assert '<option value="">No follow-up</option>' in wizard


async def test_follow_ups_through_a_mailbox_blind_to_replies_are_refused_with_the_form_kept(
    web_client: httpx.AsyncClient, session: AsyncSession
) -> None:
    token, picked = await wizard_ready(web_client)
    typed = {
        "csrf_token": token,
        "name": "Leads with a nudge",
        "window_days": ["0", "1", "2", "3", "4"],
        "step1_template_id": picked["template_id"],
        "step1_delay": "6",
        **picked,
    }
    refused = await web_client.post("/campaigns", data=typed)
    assert refused.status_code == 422
    assert 'role="alert"' in refused.text
    assert "This mailbox cannot see replies" in refused.text  # the problem's title
    assert "cannot read replies, so follow-ups would reach people who already answered" in (
        refused.text
    )  # the API's own detail
    assert 'id="reply-detection-fix"' in refused.text
    assert 'value="Leads with a nudge"' in refused.text
    assert 'id="f-step1_delay" name="step1_delay" type="number" value="6"' in refused.text
    assert await campaigns(session) == 0  # the draft was rolled back

    too_long = await web_client.post(
        "/campaigns", data={**typed, "step1_delay": "20", "followups_without_reply_detection": "on"}
    )
    assert too_long.status_code == 422
    assert "follow-up 1, delay business days: Input should be less than or equal to 14" in (
        too_long.text
    )
    assert 'name="followups_without_reply_detection" checked' in too_long.text
    assert await campaigns(session) == 0


async def test_opted_in_follow_ups_show_in_the_plan_the_cost_and_the_campaign_page(
    web_client: httpx.AsyncClient, database: Database, frozen_clock: Clock
) -> None:
    token, picked = await wizard_ready(web_client)
    created = await web_client.post(
        "/campaigns",
        data={
            "csrf_token": token,
            "name": "Leads with a nudge",
            "window_days": ["0", "1", "2", "3", "4"],
            "min_gap_minutes": "0",
            "step1_template_id": picked["template_id"],
            "step1_delay": "2",
            "followups_without_reply_detection": "on",
            **picked,
        },
    )
    assert created.status_code == 303, created.text
    review = (await web_client.get(created.headers["location"])).text
    assert "Ready to schedule" in review
    assert "is the file outbox: messages are written to files, not sent." in review  # a check
    assert 'id="to-send">6<' in review
    assert 'id="cost">12<' in review
    assert "6 people × 2 emails each" in review
    assert 'id="first-send">25 Nov 2026, 09:00 UTC<' in review  # the plan's schedule
    assert (
        "Follow-up 1 (Intro): 2 business days after the first email went out, "
        "to those who have not replied (this mailbox cannot see replies: mark them by hand)"
    ) in review
    assert "Schedule 6 people (12 emails) for 12 credits" in review
    campaign_url = created.headers["location"].removesuffix("/review")
    scheduled = await schedule_page(web_client, campaign_url, token)
    assert scheduled.status_code == 303, scheduled.text

    page = (await web_client.get(campaign_url)).text
    assert 'id="count-waiting">6<' in page
    assert 'id="no-reply-detection"' in page
    campaign_id = campaign_url.rsplit("/", 1)[1]
    await prepare_campaign_emails(database, uuid.UUID(campaign_id))
    for _ in range(3):
        await send_due_emails(database)
        frozen_clock.advance(timedelta(minutes=5))
    assert await advance_sequences(database) == 6
    page = (await web_client.get(campaign_url)).text
    assert 'id="count-sent">6<' in page
    steps = re.search(r'<table id="step-stats">.*?</table>', page, re.S)
    assert steps is not None
    assert re.search(r"First email</th><td>6</td><td>6</td>", steps.group(0))
    assert re.search(r"Follow-up 1</th><td>6</td><td>0</td>", steps.group(0))

    ravi = GOOD[0][0]
    marked = await web_client.post(
        f"{campaign_url}/replied", data={"csrf_token": token, "email": ravi.upper()}
    )
    assert marked.status_code == 303, marked.text
    timeline = (await web_client.get(marked.headers["location"])).text
    assert "Marked as replied; 1 follow-up(s) cancelled and refunded." in timeline
    rows = re.findall(r"<tr><td>.*?</tr>", timeline)
    assert [re.search(r'class="status[^"]*">([^<]+)<', r).group(1) for r in rows] == [  # type: ignore[union-attr]
        "sent",
        "replied",
        "cancelled",
    ]
    assert "marked by you" in timeline
    assert "Did they reply?" not in timeline  # no second button
    page = (await web_client.get(campaign_url)).text
    assert 'id="answer-replied">1<' in page
    assert 'id="reply-rate">17%<' in page  # 1 of 6
    again = await web_client.post(
        f"{campaign_url}/replied", data={"csrf_token": token, "email": ravi, "back": "timeline"}
    )
    assert "Already marked as replied" in (await web_client.get(again.headers["location"])).text


async def test_marking_someone_not_in_the_campaign_shows_the_problem_with_the_address_kept(
    web_client: httpx.AsyncClient, session: AsyncSession
) -> None:
    token, picked = await wizard_ready(web_client)
    created = await web_client.post(
        "/campaigns", data={"csrf_token": token, "name": "Leads", "window_days": "2", **picked}
    )
    campaign_url = created.headers["location"].removesuffix("/review")
    await schedule_page(web_client, campaign_url, token)
    stranger = await web_client.post(
        f"{campaign_url}/replied", data={"csrf_token": token, "email": "nobody@else.example"}
    )
    assert stranger.status_code == 404
    assert "no email of this campaign goes to nobody@else.example" in stranger.text
    assert 'id="r-email" name="email" type="email" value="nobody@else.example"' in stranger.text
    early = await web_client.post(
        f"{campaign_url}/replied", data={"csrf_token": token, "email": GOOD[1][0]}
    )
    assert early.status_code == 409
    assert f"nothing was sent to {GOOD[1][0]} yet" in early.text
    assert "Traceback" not in early.text
    replied = await session.scalar(
        select(func.count())
        .select_from(ScheduledEmail)
        .where(ScheduledEmail.status == EmailStatus.cancelled)
    )
    assert replied == 0  # nothing changed


async def test_the_review_of_a_campaign_whose_mailbox_was_revoked_says_what_blocks_it(
    web_client: httpx.AsyncClient, session: AsyncSession
) -> None:
    token, picked = await wizard_ready(web_client)
    created = await web_client.post(
        "/campaigns", data={"csrf_token": token, "name": "Leads", "window_days": "2", **picked}
    )
    mailbox = await session.scalar(select(Mailbox))
    assert mailbox is not None
    mailbox.status = MailboxStatus.revoked
    mailbox.status_reason = "access was withdrawn"
    await session.flush()
    review = await web_client.get(created.headers["location"])
    assert review.status_code == 200
    assert "Not ready yet" in review.text
    assert f"{SENDER} is revoked: access was withdrawn; reconnect it first." in review.text
    assert 'id="blocked"' in review.text
    assert "/schedule" not in review.text  # no button that can only be refused


async def test_send_me_a_test_from_the_review_writes_one_email_to_myself(
    web_client: httpx.AsyncClient, web_settings: Settings
) -> None:
    token, picked = await wizard_ready(web_client)
    created = await web_client.post(
        "/campaigns", data={"csrf_token": token, "name": "Leads", "window_days": "2", **picked}
    )
    review_url = created.headers["location"]
    review = (await web_client.get(review_url)).text
    assert "Send yourself the first email and read it on your phone" in review
    assert "POST /v1/" not in review  # the plan's words for API users are not shown here
    campaign_url = review_url.removesuffix("/review")
    tested = await web_client.post(f"{campaign_url}/test-send", data={"csrf_token": token})
    assert tested.status_code == 303, tested.text
    page = (await web_client.get(tested.headers["location"])).text
    assert f"A test email went to {SENDER}" in page
    (sent,) = web_settings.outbox_path.glob("*/*.eml")
    message = BytesParser(policy=policy.default).parsebytes(sent.read_bytes())
    assert message["To"] == SENDER
    assert message["Subject"].startswith("[Test] Ravi")


async def test_the_campaign_page_shows_its_emails_being_prepared(
    web_client: httpx.AsyncClient, session: AsyncSession, database: Database
) -> None:
    token, picked = await wizard_ready(web_client)
    created = await web_client.post(
        "/campaigns", data={"csrf_token": token, "name": "Leads", "window_days": "2", **picked}
    )
    campaign_url = created.headers["location"].removesuffix("/review")
    campaign = await session.get(Campaign, uuid.UUID(campaign_url.rsplit("/", 1)[1]))
    assert campaign is not None
    user = await session.get(User, campaign.user_id)
    assert user is not None
    # Scheduled in the test's own session, which never commits: the preparing job that
    # would follow the commit waits for us.
    await campaign_service.schedule(session, user=user, campaign=campaign)
    await session.flush()
    page = (await web_client.get(campaign_url)).text
    assert "Preparing the emails: 0 of 6 ready" in page
    assert '<progress id="prepare-progress" max="6" value="0">' in page
    assert '<div id="live" data-refresh="3">' in page
    await prepare_campaign_emails(database, campaign.id)
    page = (await web_client.get(campaign_url)).text
    assert "Preparing the emails" not in page
    assert 'id="count-ready">6<' in page


async def test_review_mode_emails_wait_on_the_page_until_approved(
    web_client: httpx.AsyncClient, database: Database
) -> None:
    token, picked = await wizard_ready(web_client)
    created = await web_client.post(
        "/campaigns",
        data={
            "csrf_token": token,
            "name": "Checked by hand",
            "window_days": "2",
            "review_mode": "on",
            **picked,
        },
    )
    campaign_url = created.headers["location"].removesuffix("/review")
    await schedule_page(web_client, campaign_url, token)
    await prepare_campaign_emails(database, uuid.UUID(campaign_url.rsplit("/", 1)[1]))
    page = (await web_client.get(campaign_url)).text
    assert 'id="count-awaiting_approval">6<' in page
    assert "Approve waiting emails" in page
    approved = await web_client.post(f"{campaign_url}/approve", data={"csrf_token": token})
    assert approved.status_code == 303
    page = (await web_client.get(campaign_url)).text
    assert 'id="count-awaiting_approval">0<' in page
    assert 'id="count-ready">6<' in page
    assert "Approve waiting emails" not in page
