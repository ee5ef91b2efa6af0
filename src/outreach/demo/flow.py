"""``outreach demo``: the main job end to end on a throw-away database, offline.

The real app runs in this process (its lifespan: in-process jobs, parsing pool,
local storage, file outbox) and the demo drives it over its HTTP API through
``httpx.ASGITransport``, as a client would: dev login, an outbox mailbox, a
resume and its analysis, a suppression, a list upload, bulk verification
against the demo's own DNS responder, a template, a campaign preview and
schedule, with one follow-up step. Then it moves the application clock
(``kit/clock.py``) to each due time and runs the send tick until every first email
has been written to the outbox; marks one recipient as replied by hand (an outbox
cannot read replies, so the campaign opts into follow-ups without reply detection,
and the demo says so), which cancels and refunds that recipient's follow-up; runs the
sequence job and sends the other follow-ups, each answering its first email.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from sqlalchemy import func, select

from outreach.app import create_app
from outreach.campaign.tasks import advance_sequences, send_due_emails
from outreach.config import Environment, Settings
from outreach.demo import samples
from outreach.demo.dns import LocalDNS
from outreach.demo.report import DemoResult, print_summary
from outreach.kit.clock import clock
from outreach.kit.db import Database
from outreach.migrations.runner import upgrade
from outreach.models import User

MARKER = ".outreach-demo"  # only a folder holding this is ever emptied by the demo
BASE_URL = "http://127.0.0.1:8000"  # where `make run` serves: used in unsubscribe links
WAIT_SECONDS = 60.0
UNFINISHED = ("pending", "ready", "awaiting_approval", "sending")
STEPS = 14


class DemoFailed(RuntimeError):
    """The demo could not finish; the message says where and why."""


class DemoSettings(Settings):
    """Settings from the arguments only: an ``OUTREACH_*`` variable or ``.env`` meant
    for the real service (Redis, an LLM, a price) must not change the demo."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def demo_settings(data_dir: Path, nameserver: str, database_url: str | None) -> Settings:
    return DemoSettings(
        env=Environment.development,  # dev login and outbox mailboxes
        base_url=BASE_URL,
        cors_origins=[BASE_URL],
        log_level="WARNING",
        database_url=database_url or f"sqlite+aiosqlite:///{data_dir / 'outreach.db'}",
        storage_path=data_dir / "storage",
        outbox_path=data_dir / "outbox",
        embedded_scheduler=False,  # the demo runs the send tick itself, as the clock moves
        parsing_workers=1,
        dns_nameservers=[nameserver],
        dns_timeout_seconds=2.0,
    )


def prepare_data_dir(data_dir: Path) -> None:
    """Empty the demo folder of a previous run; never touch a folder that is not one."""
    if data_dir.exists() and any(data_dir.iterdir()):
        if not (data_dir / MARKER).exists():
            raise DemoFailed(
                f"{data_dir} is not empty and was not made by the demo; "
                "choose another folder with --data-dir"
            )
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / MARKER).write_text("made by `outreach demo`; emptied by the next run\n")


async def run_demo(
    data_dir: Path, *, console: Console | None = None, database_url: str | None = None
) -> DemoResult:
    """Run the whole demo in ``data_dir`` (emptied first) and print what happened."""
    console = console or Console()
    started = time.perf_counter()
    prepare_data_dir(data_dir)
    async with LocalDNS(samples.dns_zone()) as dns_server:
        settings = demo_settings(data_dir, dns_server.nameserver, database_url)
        await asyncio.to_thread(upgrade, settings.database_url)
        database = Database.from_settings(settings)
        app = create_app(settings, database=database)
        transport = httpx.ASGITransport(app=app)
        try:
            await _require_empty(database)
            async with (
                app.router.lifespan_context(app),
                httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client,
            ):
                with _progress(console) as progress:
                    run = DemoRun(client, progress, settings, data_dir)
                    result = await run.run()
        finally:
            clock.unfreeze()
            await database.dispose()
        result.dns_queries = dns_server.queries
    result.seconds = time.perf_counter() - started
    print_summary(console, result)
    return result


async def _require_empty(database: Database) -> None:
    """A database given with --database-url must be new: the demo signs up its own user."""
    async with database.session() as session:
        if await session.scalar(select(func.count()).select_from(User)):
            raise DemoFailed("the demo needs an empty database; this one already has users")


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("[bold blue]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


class DemoRun:
    """The steps, each one or two API calls, in the order a user would take them."""

    def __init__(
        self, client: httpx.AsyncClient, progress: Progress, settings: Settings, data_dir: Path
    ) -> None:
        self.client = client
        self.progress = progress
        self.settings = settings
        self.data_dir = data_dir
        self.steps: TaskID = progress.add_task("demo", total=STEPS)
        self.done = 0

    # -- plumbing -------------------------------------------------------------------

    async def call(self, method: str, url: str, **kwargs: Any) -> Any:
        response = await self.client.request(method, url, **kwargs)
        if response.status_code >= 400:
            raise DemoFailed(f"{method} {url} answered {response.status_code}: {response.text}")
        return response.json() if response.content else None

    def step(self, message: str) -> None:
        self.done += 1
        self.progress.console.print(f"[bold]{self.done:>2}/{STEPS}[/] {escape(message)}")
        self.progress.advance(self.steps)

    async def wait_for(self, url: str, finished: Callable[[Any], bool], what: str) -> Any:
        """Poll ``url`` while an in-process job works (real time, not the app clock)."""
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            body = await self.call("GET", url)
            if finished(body):
                return body
            if time.monotonic() > deadline:
                raise DemoFailed(f"{what} did not finish in {WAIT_SECONDS:.0f} s: {body}")
            await asyncio.sleep(0.05)

    # -- the story --------------------------------------------------------------------

    async def run(self) -> DemoResult:
        credits_before = await self.sign_in()
        mailbox_id = await self.add_outbox_mailbox()
        resume = await self.analyse_resume()
        await self.suppress(samples.SUPPRESSED.email)
        recipient_list, errors = await self.upload_list()
        verification = await self.verify(recipient_list["id"])
        template_id = await self.create_template()
        followup_id = await self.create_followup_template()
        campaign_id, preview = await self.preview(
            mailbox_id, template_id, followup_id, recipient_list["id"]
        )
        scheduled = await self.schedule(campaign_id)
        result = DemoResult(
            data_dir=self.data_dir,
            database=self.settings.database_url.split(":", 1)[0].split("+", 1)[0],
            outbox=self.settings.outbox_path / mailbox_id,
            eml_files=[],
            credits_before=credits_before,
            credits_after=credits_before,
            ledger=[],
            email_counts={},
            list_counts=recipient_list["counts"],
            import_errors=errors,
            verification=verification,
            resume=resume,
            preview=preview,
            scheduled=scheduled,
        )
        await self.send_all(campaign_id, scheduled, result)
        result.replied = await self.mark_replied(campaign_id)
        await self.send_followups(campaign_id, scheduled, result)
        await self.tally(campaign_id, result)
        return result

    async def sign_in(self) -> int:
        await self.call(
            "POST",
            "/v1/auth/dev-login",
            json={"email": samples.SENDER_EMAIL, "name": samples.SENDER_NAME},
        )
        # A browser app echoes the CSRF cookie in this header on every unsafe request.
        self.client.headers["X-CSRF-Token"] = self.client.cookies["outreach_csrf"]
        balance: int = (await self.call("GET", "/v1/credits/balance"))["balance"]
        self.step(
            f"Signed in as {samples.SENDER_NAME} <{samples.SENDER_EMAIL}> (development login): "
            f"{balance} free credits"
        )
        return balance

    async def add_outbox_mailbox(self) -> str:
        mailbox = await self.call(
            "POST",
            "/v1/mailboxes/outbox",
            json={
                "address": samples.SENDER_EMAIL,
                "display_name": samples.SENDER_NAME,
                "timezone": samples.SENDER_TIMEZONE,
            },
        )
        self.step(
            f"Added an outbox mailbox ({samples.SENDER_TIMEZONE}): emails become .eml files, "
            "nothing is delivered"
        )
        return str(mailbox["id"])

    async def analyse_resume(self) -> dict[str, Any]:
        name = "asha-rao-resume.docx"
        kind = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
        resume = await self.call(
            "POST",
            "/v1/resume/upload",
            files={"file": (name, samples.resume_docx(), kind)},
        )
        analysis: dict[str, Any] = await self.call(
            "POST",
            "/v1/resume/analyze",
            json={"resume_id": resume["id"], "target_role": samples.TARGET_ROLE},
        )
        score = "not scored" if analysis["score"] is None else f"{analysis['score']}/100"
        self.step(
            f"Uploaded {name} and analysed it for {samples.TARGET_ROLE}: ATS score {score} "
            f"({analysis['grade'] or 'see red flags'}), "
            f"{'free' if analysis['free'] else str(analysis['credits_charged']) + ' credits'}"
        )
        return {"file": name, **analysis}

    async def suppress(self, address: str) -> None:
        await self.call("POST", "/v1/suppressions", json={"value": address, "reason": "manual"})
        self.step(f"Put {address} on the suppression list (asked not to be contacted)")

    async def upload_list(self) -> tuple[dict[str, Any], list[str]]:
        created = await self.call(
            "POST",
            "/v1/recipients/lists/upload",
            files={"file": ("data-leads.csv", samples.contacts_csv(), "text/csv")},
            data={"name": "Data engineering leads"},
        )
        url = f"/v1/recipients/lists/{created['id']}"
        recipient_list = await self.wait_for(
            url, lambda body: body["status"] in ("ready", "failed"), "the list import"
        )
        if recipient_list["status"] != "ready":
            raise DemoFailed(f"the list import failed: {recipient_list['error']}")
        page = await self.call("GET", f"{url}/errors")
        errors = [f"row {e['row']}: {e['reason']} ({e['value']})" for e in page["items"]]
        counts = recipient_list["counts"]
        self.step(
            f"Uploaded a list of {len(samples.CONTACTS)} contacts: {counts['imported']} imported, "
            f"{counts['invalid']} invalid, {counts['suppressed']} suppressed"
        )
        return recipient_list, errors

    async def verify(self, list_id: str) -> dict[str, Any]:
        job = await self.call(
            "POST",
            "/v1/verify/bulk",
            json={"list_id": list_id},
            headers={"Idempotency-Key": "demo-verify"},
        )
        done: dict[str, Any] = await self.wait_for(
            f"/v1/verify/jobs/{job['id']}",
            lambda body: body["status"] in ("completed", "failed"),
            "the bulk verification",
        )
        if done["status"] != "completed":
            raise DemoFailed(f"the bulk verification failed: {done['error']}")
        counts = ", ".join(f"{n} {status}" for status, n in sorted(done["counts"].items()))
        done["flagged"] = await self.flagged(list_id)
        self.step(
            f"Verified {done['total']} addresses (syntax, MX via the demo's DNS on "
            f"{self.settings.dns_nameservers[0]}, disposable): {counts}"
        )
        return done

    async def flagged(self, list_id: str) -> list[str]:
        """Each address verification did not pass, with its reasons."""
        flagged = []
        for status in ("undeliverable", "risky", "unknown"):
            page = await self.call(
                "GET", f"/v1/recipients/lists/{list_id}/items", params={"status": status}
            )
            flagged += [
                f"{item['email']} {status} ({', '.join(item['verification_reasons'])})"
                for item in page["items"]
            ]
        return flagged

    async def create_template(self) -> str:
        template = await self.call("POST", "/v1/templates", json=samples.TEMPLATE)
        self.step(
            f'Wrote the template "{template["name"]}" using '
            f"{', '.join(template['variables'])}; the unsubscribe footer is added to every email"
        )
        return str(template["id"])

    async def create_followup_template(self) -> str:
        template = await self.call("POST", "/v1/templates", json=samples.FOLLOW_UP)
        self.step(
            f'Wrote the follow-up "{template["name"]}", sent 2 business days after the first '
            'email to those who have not replied, in its thread ("Re: " + its subject)'
        )
        return str(template["id"])

    async def preview(
        self, mailbox_id: str, template_id: str, followup_id: str, list_id: str
    ) -> tuple[str, dict[str, Any]]:
        campaign = await self.call(
            "POST",
            "/v1/campaigns",
            json={
                "name": "Data engineering leads",
                "mailbox_id": mailbox_id,
                "template_id": template_id,
                "list_id": list_id,
                "min_gap_seconds": 300,
                "jitter_seconds": 60,
                "attach_resume": True,
                "steps": [{"template_id": followup_id, "delay_business_days": 2}],
                # An outbox (like SMTP) cannot read replies: follow-ups need this yes.
                "followups_without_reply_detection": True,
            },
        )
        preview: dict[str, Any] = await self.call(
            "POST", f"/v1/campaigns/{campaign['id']}/preview", params={"limit": 1}
        )
        skipped = ", ".join(f"{n} {why}" for why, n in sorted(preview["skipped"].items()))
        first = preview["emails"][0] if preview["emails"] else None
        self.step(
            f"Previewed the campaign: {preview['to_send']} to send for {preview['credit_cost']} "
            f"credits, skipped {skipped or 'none'}"
            + (f'; first: "{first["subject"]}" to {first["to"]}' if first else "")
        )
        return str(campaign["id"]), preview

    async def schedule(self, campaign_id: str) -> int:
        scheduled = await self.call(
            "POST",
            f"/v1/campaigns/{campaign_id}/schedule",
            headers={"Idempotency-Key": "demo-schedule"},
        )
        count: int = scheduled["scheduled"]
        await self.wait_for(
            f"/v1/campaigns/{campaign_id}",
            lambda body: body["counts"]["pending"] == 0,
            "preparing the emails",
        )
        campaign = scheduled["campaign"]
        self.step(
            f"Scheduled {count} emails for {scheduled['charged_credits']} credits, "
            f"{campaign['window_start']}-{campaign['window_end']} on weekdays "
            f"({campaign['timezone'] or samples.SENDER_TIMEZONE}), at least "
            f"{campaign['min_gap_seconds'] // 60} minutes apart; their messages are prepared"
        )
        return count

    async def send_all(
        self, campaign_id: str, total: int, result: DemoResult, *, what: str = "first emails"
    ) -> None:
        """Move the clock to each next due time and run the send tick, until all are out
        (follow-ups still ``waiting`` for the sequence job are not due yet)."""
        sending = self.progress.add_task(f"sending {what}", total=total)
        result.clock_from = result.clock_from or clock.now()
        for _ in range(10 * total + 10):
            counts = (await self.call("GET", f"/v1/campaigns/{campaign_id}"))["counts"]
            finished = total - sum(counts[status] for status in UNFINISHED)
            self.progress.update(sending, completed=finished)
            if finished >= total:
                break
            due = await self.next_due(campaign_id)
            if due is not None and due > clock.now():
                clock.freeze(due)
            await send_due_emails()
            result.send_ticks += 1
        else:
            raise DemoFailed(f"emails still unsent after {result.send_ticks} send ticks")
        result.clock_to = clock.now()
        moved = result.clock_to - result.clock_from
        hours = moved.total_seconds() / 3600
        self.step(
            f"Sent the {what}: the clock is {hours:.1f} hours on after "
            f"{result.send_ticks} send ticks"
        )

    async def mark_replied(self, campaign_id: str) -> str:
        """One recipient answered: an outbox cannot read replies, so the user says so."""
        address = samples.GOOD[0].email
        marked = await self.call(
            "POST", f"/v1/campaigns/{campaign_id}/replied", json={"email": address}
        )
        self.step(
            f"Marked {address} as replied by hand: this outbox mailbox cannot read replies "
            "(reply_detection: unavailable), so the campaign sends follow-ups without reply "
            f"detection, as asked, and {marked['cancelled_followups']} follow-up to them was "
            "cancelled and its credit refunded"
        )
        return address

    async def send_followups(self, campaign_id: str, total: int, result: DemoResult) -> None:
        """The sequence job gives each follow-up its time and thread; then send them."""
        scheduled = await advance_sequences()
        await self.wait_for(
            f"/v1/campaigns/{campaign_id}",
            lambda body: body["counts"]["pending"] == 0,
            "preparing the follow-ups",
        )
        result.followups = scheduled
        await self.send_all(campaign_id, total, result, what=f"{scheduled} follow-ups")

    async def next_due(self, campaign_id: str) -> datetime | None:
        page = await self.call(
            "GET", f"/v1/campaigns/{campaign_id}/emails", params={"status": "ready", "limit": 100}
        )
        times = [datetime.fromisoformat(email["due_at"]) for email in page["items"]]
        return min(times) if times else None

    async def tally(self, campaign_id: str, result: DemoResult) -> None:
        stats = await self.call("GET", f"/v1/campaigns/{campaign_id}/stats")
        result.email_counts = {k: v for k, v in stats["counts"].items() if v and k != "total"}
        result.credits_after = (await self.call("GET", "/v1/credits/balance"))["balance"]
        ledger = await self.call("GET", "/v1/credits/ledger", params={"limit": 100})
        result.ledger = [(entry["reason"], entry["delta"]) for entry in reversed(ledger["items"])]
        result.eml_files = sorted(result.outbox.glob("*.eml"))
        self.step(f"Sent {len(result.eml_files)} emails to the outbox: {result.outbox}")
