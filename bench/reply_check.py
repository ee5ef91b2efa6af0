"""Checking 100 full-mode Gmail mailboxes for replies, each with 1,000 tracked threads
(sent campaign emails), through the fake Gmail of the tests (``tests/fakes/gmail.py``:
every request checked against Google's discovery document) answering after 50 ms.

**project**: the periodic job itself, ``mailbox.tasks.check_inboxes`` (what the
scheduler runs every 5 minutes), three times:

1. the first check, with 5 mailboxes that have no history id yet (``--unchecked``; the
   others hold Gmail's current one, as if checked before): each of those notes
   ``getProfile``'s history id and reads every tracked thread (``threads.get``), which
   Gmail's quota makes a minute or more per mailbox; its cost is reported;
2. a check when nothing changed: one ``history.list`` per mailbox (target: at most 2
   Gmail calls per mailbox), timed in rounds against the baseline below;
3. a check after replies, auto-replies and bounces (Gmail's DSNs) were delivered into
   20 threads of 20 mailboxes, and a message outside our threads into one more: each
   is found once (counts asserted), for one ``messages.get`` each.

**baseline** (for 2): the same number of bare ``httpx`` ``history.list`` requests (same
parameters, tokens and fake), the same number in flight: what asking Gmail costs with
none of our machinery around it. Target: project / baseline time <= 3.

**quota**: the fake notes when each call reached it and for whom; with Google's
published units (developers.google.com/gmail/api/reference/quota: ``getProfile`` 1,
``history.list`` 2, ``messages.get`` 5, ``threads.get`` 10) the peak per user over
any 1 s (Gmail's 250 units per user per second) and any 60 s (its quota page now says
15,000 per user per minute) are reported as targets.

PostgreSQL when ``OUTREACH_TEST_DATABASE_URL`` is set, else SQLite (see
``bench/_common.py``); the fake runs in its own process. About 4 minutes on the
shared 2-core machine: seeding 100,000 sent emails, and the full reads, which take at
least 1,000 x 50 ms each. ``--unchecked 100`` makes every mailbox read every thread
(100,000 ``threads.get``: at 20 mailboxes at a time, 5 x 50 s at the very least).

    uv run python bench/reply_check.py [--mailboxes 100] [--threads 1000]
        [--unchecked 5] [--concurrency 20] [--rounds 5] [--latency 0.05]
        [--postgres | --sqlite]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
from _common import (
    Target,
    add_database_options,
    database_label,
    exit_code,
    fresh_database,
    load_average,
    report,
    spawn,
)
from sqlalchemy import func, insert, select

from outreach import tasks  # noqa: F401 - registers the jobs and the campaign's hooks
from outreach.config import Environment, Settings, use_settings
from outreach.kit.crypto import encrypt_secret
from outreach.kit.db import Database, create_engine
from outreach.kit.logging import configure_logging
from outreach.mailbox.http import close_google_http
from outreach.mailbox.oauth import GMAIL_COMPOSE, GMAIL_METADATA
from outreach.mailbox.tasks import check_inboxes
from outreach.migrations.runner import upgrade
from outreach.models import (
    Campaign,
    CreditAccount,
    EmailEvent,
    Mailbox,
    MailboxMode,
    MailboxProvider,
    ScheduledEmail,
    Template,
    User,
)
from outreach.models.campaign import CampaignStatus, EmailStatus

# The fake's process imports tests.fakes from the checkout (spawned, it gets this path).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BENCH = "reply_check"
LATENCY = 0.05
SCOPES = ["openid", "email", GMAIL_COMPOSE, GMAIL_METADATA]
# Google's published cost of each call, kept apart from the code's own table on purpose.
PUBLISHED_UNITS = {
    "gmail.users.getProfile": 1,
    "gmail.users.history.list": 2,
    "gmail.users.messages.get": 5,
    "gmail.users.threads.get": 10,
}
PER_USER_PER_SECOND = 250  # Gmail's per-user limit, "moving average (allows short bursts)"
PER_USER_PER_MINUTE = 15_000  # the same limit as Google's quota page now states it
# Where replies, auto-replies and bounces arrive in the third check (mailbox numbers).
DELIVERIES = {"replied": range(0, 10), "auto_reply": range(10, 15), "bounced": range(15, 20)}
UNRELATED_AT = 20  # a message outside our threads: seen in the history, never read


# --------------------------------------------------------------------------- the fake


def serve_fake_gmail(commands: Connection, latency: float) -> None:
    """The fake Google (tokens) and Gmail, in this process, answering ``commands``."""
    from tests.fakes.gmail import FakeGmail, StoredMessage
    from tests.fakes.google import FakeGoogle
    from tests.fakes.server import FakeServer

    class TimedGmail(FakeGmail):
        """Notes when each call is answered and for whom: quota is per user and second."""

        def reset(self) -> None:
            super().reset()
            self.timeline: list[tuple[float, str, str]] = []

        def _perform(self, method_id: str, email: str, request: Any, body: Any) -> Any:
            self.timeline.append((time.monotonic(), email, method_id))
            return super()._perform(method_id, email, request, body)

    google = FakeGoogle()
    gmail = TimedGmail(google)
    for server in (google, gmail):  # connections idle between the phases
        server.server = FakeServer(server.app, keep_alive_seconds=600)
    for method_id in PUBLISHED_UNITS:
        gmail.delay(method_id, latency)

    def seed(addresses: list[str], threads: int) -> dict[str, Any]:
        accounts: dict[str, Any] = {}
        for number, address in enumerate(addresses):
            grant = google.oauth.issue_grant(email=address, scopes=SCOPES)
            box = gmail.mailbox(address)
            sent = []
            for n in range(threads):
                to, message_id = f"lead{n}@firm{n}.example", f"<m{number}.{n}@bench.example>"
                raw = (
                    f"From: Sender {number} <{address}>\r\nTo: {to}\r\nSubject: Hello {n}\r\n"
                    f"Message-ID: {message_id}\r\nMIME-Version: 1.0\r\n"
                    "Content-Type: text/plain; charset=utf-8\r\n\r\nHi,\r\n\r\nA short note.\r\n"
                ).encode()
                message = StoredMessage(gmail._new_id(), gmail._new_id(), raw, ["SENT"])
                box.add(message)
                sent.append((message.thread_id, message.id, message_id, to))
            accounts[address] = {
                "token": google.oauth.issue_access_token(grant, expires_in=86_400),
                "refresh": grant.refresh_token,
                "sent": sent,
                "history_id": str(box.history_id),
            }
        return accounts

    def deliver(plan: list[tuple[str, str | None, str]]) -> int:
        deliveries = {
            "replied": gmail.deliver_reply,
            "auto_reply": gmail.deliver_auto_reply,
            "bounced": gmail.deliver_bounce,
        }
        for address, thread_id, kind in plan:
            if thread_id is None:
                gmail.deliver(address, b"From: friend@else.example\r\nSubject: Lunch?\r\n\r\nhi")
            else:
                deliveries[kind](address, gmail.mailbox(address).by_thread[thread_id][0])
        return len(plan)

    def timeline() -> list[tuple[float, str, str]]:
        taken, gmail.timeline = gmail.timeline, []
        gmail.calls.clear()
        gmail.bodies.clear()
        return taken

    handlers = {"seed": seed, "deliver": deliver, "timeline": timeline, "cpu": time.process_time}
    with google, gmail:
        commands.send((gmail.url, google.url))
        while True:
            command, args = commands.recv()
            if command == "stop":
                return
            commands.send(handlers[command](*args))


class Fake:
    """The parent's end of the fake's process."""

    def __init__(self, latency: float) -> None:
        import multiprocessing

        self.commands, child = multiprocessing.get_context("spawn").Pipe()
        self.process = spawn(serve_fake_gmail, child, latency)
        self.gmail_url, self.google_url = self.commands.recv()

    def call(self, command: str, *args: Any) -> Any:
        self.commands.send((command, args))
        return self.commands.recv()

    def stop(self) -> None:
        if self.process.is_alive():
            self.commands.send(("stop", ()))
            self.process.join(timeout=10)
        self.process.kill()


# --------------------------------------------------------------------------- the data


async def seed(
    database: Database, accounts: dict[str, Any], now: datetime, *, unchecked: int
) -> None:
    """A user with one full-mode Gmail mailbox per account, each with one campaign whose
    emails were all sent yesterday, each in its own Gmail thread. All but the first
    ``unchecked`` mailboxes were checked before: they hold Gmail's current history id."""
    async with database.session() as session:
        user = User(email="replies@example.com", name="Replies", referral_code="REPLYBENCH")
        session.add(user)
        await session.flush()
        session.add(CreditAccount(user_id=user.id, balance=0))
        template = Template(user_id=user.id, name="t", current_version=1)
        session.add(template)
        await session.flush()
    for number, (address, account) in enumerate(accounts.items()):
        async with database.session() as session:
            mailbox = Mailbox(
                user_id=user.id,
                provider=MailboxProvider.gmail,
                mode=MailboxMode.full,
                address=address,
                granted_scopes=SCOPES,
                access_token_encrypted=encrypt_secret(account["token"]),
                refresh_token_encrypted=encrypt_secret(account["refresh"]),
                access_token_expires_at=now + timedelta(days=1),
                history_id=None if number < unchecked else account["history_id"],
            )
            session.add(mailbox)
            await session.flush()
            campaign = Campaign(
                user_id=user.id,
                name=f"to leads from {address}",
                mailbox_id=mailbox.id,
                template_id=template.id,
                start_at=now - timedelta(days=1),
                status=CampaignStatus.sending,
                template_version=1,
            )
            session.add(campaign)
            await session.flush()
            sent_at = now - timedelta(days=1)
            await session.execute(
                insert(ScheduledEmail),
                [
                    {
                        "id": uuid.uuid4(),
                        "campaign_id": campaign.id,
                        "user_id": user.id,
                        "mailbox_id": mailbox.id,
                        "to_address": to,
                        "status": EmailStatus.sent,
                        "due_at": sent_at,
                        "sent_at": sent_at,
                        "subject": "Hello",
                        "body_text": "Hi,\n\nA short note.\n",
                        "rfc822_message_id": message_id,
                        "provider_message_id": gmail_id,
                        "thread_id": thread_id,
                        "attempts": 1,
                        "refunded": False,
                    }
                    for thread_id, gmail_id, message_id, to in account["sent"]
                ],
            )


async def stored_history_ids(database: Database) -> dict[str, str | None]:
    async with database.session() as session:
        rows = await session.execute(select(Mailbox.address, Mailbox.history_id))
        return {str(address): history_id for address, history_id in rows.all()}


async def events_by_kind(database: Database) -> dict[str, int]:
    async with database.session() as session:
        rows = await session.execute(
            select(EmailEvent.kind, func.count()).group_by(EmailEvent.kind)
        )
        return {str(getattr(kind, "value", kind)): count for kind, count in rows.all()}


# --------------------------------------------------------------------------- measuring


@dataclass
class Check:
    """One run of the job: what it found, how long it took, what Gmail saw."""

    findings: int
    seconds: float
    cpu_seconds: float
    fake_cpu_seconds: float
    timeline: list[tuple[float, str, str]]

    def calls_per_mailbox(self) -> Counter[str]:
        return Counter(email for _, email, _ in self.timeline)

    def methods(self) -> Counter[str]:
        return Counter(method for _, _, method in self.timeline)

    def units_per_mailbox(self) -> Counter[str]:
        units: Counter[str] = Counter()
        for _, email, method in self.timeline:
            units[email] += PUBLISHED_UNITS[method]
        return units


async def run_check(database: Database, fake: Fake) -> Check:
    fake_cpu = fake.call("cpu")
    cpu, started = time.process_time(), time.perf_counter()
    findings = await check_inboxes(database)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    return Check(findings, seconds, cpu, fake.call("cpu") - fake_cpu, fake.call("timeline"))


def peak_units(timeline: list[tuple[float, str, str]], window: float) -> int:
    """The most quota units one user spent within any ``window`` seconds."""
    by_user: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for at, email, method in timeline:
        by_user[email].append((at, PUBLISHED_UNITS[method]))
    peak = 0
    for calls in by_user.values():
        calls.sort()
        total, first = 0, 0
        for at, units in calls:
            total += units
            while calls[first][0] <= at - window:
                total -= calls[first][1]
                first += 1
            peak = max(peak, total)
    return peak


async def bare_history(
    client: httpx.AsyncClient, url: str, starts: list[tuple[str, str]], concurrency: int
) -> float:
    """``history.list`` once per (token, history id), ``concurrency`` in flight."""
    limit = asyncio.Semaphore(concurrency)

    async def one(token: str, start: str) -> None:
        async with limit:
            response = await client.get(
                f"{url}/gmail/v1/users/me/history",
                params={"startHistoryId": start, "historyTypes": "messageAdded", "maxResults": 500},
                headers={"Authorization": f"Bearer {token}"},
            )
            response.raise_for_status()
            response.json()

    started = time.perf_counter()
    await asyncio.gather(*(one(token, start) for token, start in starts))
    return time.perf_counter() - started


# --------------------------------------------------------------------------- the run


@dataclass
class Scale:
    mailboxes: int
    threads: int
    unchecked: int  # mailboxes without a history id at the first check
    concurrency: int
    rounds: int
    latency: float


def use_bench_settings(url: str, fake: Fake, concurrency: int) -> None:
    settings = Settings(
        _env_file=None,
        env=Environment.testing,
        secret_key="s" * 40,  # type: ignore[call-arg]
        database_url=url,
        gmail_api_url=fake.gmail_url,
        google_token_url=f"{fake.google_url}/token",
        inbox_check_concurrency=concurrency,
        log_level="WARNING",
    )
    use_settings(settings)
    configure_logging(settings)


async def quiet_rounds(
    database: Database, fake: Fake, starts: list[tuple[str, str]], scale: Scale
) -> tuple[list[Check], list[float]]:
    """Checks when nothing changed, alternating with the bare requests (after a warm-up
    of each): the machine is shared, one of each would measure its neighbours."""
    quiet, bare = [], []
    async with httpx.AsyncClient(timeout=30) as client:  # httpx's defaults, as ours
        await bare_history(client, fake.gmail_url, starts, scale.concurrency)
        await run_check(database, fake)
        for _ in range(scale.rounds):
            bare.append(await bare_history(client, fake.gmail_url, starts, scale.concurrency))
            fake.call("timeline")  # the bare requests are no check's
            check = await run_check(database, fake)
            assert check.findings == 0, "nothing arrived"
            quiet.append(check)
    return quiet, bare


def delivery_plan(addresses: list[str], accounts: dict[str, Any]) -> list[Any]:
    """A reply, auto-reply or bounce into one thread of each of 20 mailboxes, and a
    message outside our threads into one more."""
    plan: list[tuple[str, str | None, str]] = [
        (addresses[n], accounts[addresses[n]]["sent"][0][0], kind)
        for kind, numbers in DELIVERIES.items()
        for n in numbers
        if n < len(addresses)
    ]
    if len(addresses) > UNRELATED_AT:
        plan.append((addresses[UNRELATED_AT], None, "unrelated"))
    return plan


async def measure(url: str, fake: Fake, scale: Scale) -> dict[str, Any]:
    await asyncio.to_thread(upgrade, url)
    use_bench_settings(url, fake, scale.concurrency)
    database = Database(create_engine(url))
    addresses = [f"sender{n:03d}@gmail.com" for n in range(scale.mailboxes)]
    accounts = fake.call("seed", addresses, scale.threads)
    await seed(database, accounts, datetime.now(UTC), unchecked=scale.unchecked)
    print(f"seeded {scale}; load {load_average()}", flush=True)
    try:
        first = await run_check(database, fake)
        print(
            f"first check: {first.seconds:.1f} s, CPU {first.cpu_seconds:.1f} s (the fake's "
            f"{first.fake_cpu_seconds:.1f} s), {dict(first.methods())}; load {load_average()}",
            flush=True,
        )
        assert first.findings == 0, "nothing has arrived yet"
        history = await stored_history_ids(database)
        assert all(history.values()), "every mailbox has its history id after the first check"
        starts = [(accounts[a]["token"], str(history[a])) for a in addresses]
        quiet, bare = await quiet_rounds(database, fake, starts, scale)
        print(
            f"nothing changed: project {[round(c.seconds, 3) for c in quiet]} s, "
            f"bare {[round(b, 3) for b in bare]} s; load {load_average()}",
            flush=True,
        )
        fake.call("deliver", delivery_plan(addresses, accounts))
        after = await run_check(database, fake)
        found = await events_by_kind(database)
    finally:
        await close_google_http()
        await database.dispose()
    expected = {k: len([n for n in v if n < scale.mailboxes]) for k, v in DELIVERIES.items()}
    assert found == {k: v for k, v in expected.items() if v}, found
    assert after.findings == sum(expected.values()), after.findings
    assert after.methods() == Counter(
        {"gmail.users.history.list": scale.mailboxes, "gmail.users.messages.get": after.findings}
    ), after.methods()
    return {"first": first, "quiet": quiet, "bare": bare, "after": after, "found": found}


def first_check_detail(first: Check, scale: Scale) -> str:
    """What reading every thread cost each unchecked mailbox, and when the others were done."""
    calls = first.calls_per_mailbox()
    unchecked = [a for a, n in calls.items() if n > 1]
    if not unchecked:
        return f"every mailbox had a history id: {first.seconds:.1f} s"
    spans: dict[str, list[float]] = defaultdict(list)
    for at, address, _ in first.timeline:
        spans[address].append(at)
    started = min(at for at, _, _ in first.timeline)
    cheap_done = max((max(spans[a]) for a in calls if a not in unchecked), default=started)
    seconds = [max(spans[a]) - min(spans[a]) for a in unchecked]
    units = first.units_per_mailbox()
    return (
        f"{len(unchecked)} mailboxes without a history id read every thread: "
        f"{max(units[a] for a in unchecked):,} quota units and "
        f"{statistics.median(seconds):.0f} s each (median); the other "
        f"{scale.mailboxes - len(unchecked)} were done {cheap_done - started:.1f} s into the "
        f"run of {first.seconds:.0f} s ({scale.concurrency} mailboxes at a time)"
    )


def verdicts(result: dict[str, Any], scale: Scale, database: str) -> bool:
    first, quiet, after = result["first"], result["quiet"], result["after"]
    ours, bare = statistics.median(c.seconds for c in quiet), statistics.median(result["bare"])
    timeline = [call for check in (first, *quiet, after) for call in check.timeline]
    cpu = statistics.median(c.cpu_seconds for c in quiet) / scale.mailboxes
    detail = first_check_detail(first, scale)
    print(detail)
    print(
        f"nothing changed: median {ours * 1000:.0f} ms for {scale.mailboxes} mailboxes (CPU "
        f"{cpu * 1e3:.2f} ms each), bare history.list {bare * 1000:.0f} ms"
    )
    print(f"after deliveries: found {result['found']} in {after.seconds * 1000:.0f} ms")
    calls = "calls"
    return all(
        [
            report(
                BENCH,
                "Gmail calls per mailbox without a history id (every thread read)",
                ours=max(first.calls_per_mailbox().values()),
                unit=calls,
                target=Target("<=", scale.threads + 1, on="ours"),
                database=database,
                note=detail,
            ),
            report(
                BENCH,
                "Gmail calls per mailbox, check when nothing changed",
                ours=max(max(c.calls_per_mailbox().values()) for c in quiet),
                unit=calls,
                target=Target("<=", 2, on="ours"),
                database=database,
            ),
            report(
                BENCH,
                f"check of {scale.mailboxes} unchanged mailboxes vs bare history.list",
                ours=ours * 1000,
                baseline=bare * 1000,
                unit="ms",
                target=Target("<=", 3),
                database=database,
                note=f"CPU {cpu * 1e3:.1f} ms per mailbox checked",
            ),
            report(
                BENCH,
                f"Gmail calls per mailbox after {after.findings} replies/auto-replies/DSNs",
                ours=max(after.calls_per_mailbox().values()),
                unit=calls,
                target=Target("<=", 2, on="ours"),
                database=database,
            ),
            report(
                BENCH,
                "peak quota units per user in any second",
                ours=peak_units(timeline, 1.0),
                unit="units",
                target=Target("<=", PER_USER_PER_SECOND, on="ours"),
                database=database,
            ),
            report(
                BENCH,
                "peak quota units per user in any minute",
                ours=peak_units(timeline, 60.0),
                unit="units",
                target=Target("<=", PER_USER_PER_MINUTE, on="ours"),
                database=database,
            ),
        ]
    )


async def main(scale: Scale, postgres: bool) -> int:
    print(f"load average before: {load_average()}", flush=True)
    fake = Fake(scale.latency)
    try:
        async with fresh_database("replies", postgres=postgres) as url:
            result = await measure(url, fake, scale)
    finally:
        fake.stop()
    met = verdicts(result, scale, database_label(postgres))
    print(f"load average after: {load_average()}")
    return exit_code(met)


def cli() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mailboxes", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1000, help="tracked threads per mailbox")
    parser.add_argument(
        "--unchecked",
        type=int,
        default=5,
        help="mailboxes without a history id at the first check (each reads every thread)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=Settings.model_fields["inbox_check_concurrency"].default,
        help="OUTREACH_INBOX_CHECK_CONCURRENCY (default: its default)",
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--latency",
        type=float,
        default=LATENCY,
        help="seconds the fake waits before each answer (0: the pace, not Gmail, sets the speed)",
    )
    add_database_options(parser)
    arguments = parser.parse_args()
    scale = Scale(
        arguments.mailboxes,
        arguments.threads,
        min(arguments.unchecked, arguments.mailboxes),
        arguments.concurrency,
        arguments.rounds,
        arguments.latency,
    )
    return asyncio.run(main(scale, arguments.postgres))


if __name__ == "__main__":
    sys.exit(cli())
