"""Sending 2,000 due emails spread over 100 Gmail mailboxes, through a fake Gmail
that answers each ``messages.send`` after 50 ms, versus the same number of bare
``httpx`` POSTs to the same endpoint at the same concurrency.

**project**: ``campaign.sending.send_due_emails`` ticks until every email is sent:
claims under leases per mailbox (daily cap counted in the database), sends each
message through the Gmail provider (send-only mailboxes: ``messages.send`` of the
message encoded when it was prepared, as the drafts job does after scheduling; that
preparation is not timed) and commits each outcome, with
``OUTREACH_SEND_CONCURRENCY`` sends in flight.
**baseline**: the same 2,000 ``POST …/messages/send`` requests (the same encoded
messages, so the same bytes on the wire) from one ``httpx.AsyncClient``, the same
number in flight: what sending costs with none of our machinery around it.

The per-mailbox Gmail quota budget (250 units/s, a deliberate throttle that is
unit-tested in tests/mailbox) is raised for this run so that the sending
machinery itself is what is measured. PostgreSQL only (a fresh database on the
server of ``OUTREACH_TEST_DATABASE_URL``, dropped after; without it the target is
reported as not run, see bench/_common.py); the fake Gmail runs in its own process.
Target: project / baseline throughput >= 0.7.

``--burn N`` (or ``OUTREACH_BENCH_BURN=N``) starts N processes that each spin on
one core for the whole measurement (both sides), as other work on the machine
would: the run then shows whether the ratio holds when the cores are not ours
alone. ``bench/campaign_send_loaded.py`` is that variant with one burner, so
``make bench`` prints it as its own row. Each side's CPU time per send (this
process, read with ``time.process_time``) is printed as a cross-check: it barely
depends on what else runs, and when the machine is busier than the burner the
throughput ratio tends towards the CPU ratio.

    uv run python bench/campaign_send.py [--mailboxes 100] [--per-mailbox 20] [--rounds 3]
        [--burn 1]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import socket
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from _common import (
    Target,
    add_database_options,
    create_postgres_database,
    drop_postgres_database,
    exit_code,
    report,
    report_not_run,
)
from sqlalchemy import bindparam, func, insert, select, update

from outreach import tasks  # noqa: F401 - registers the jobs
from outreach.config import Environment, Settings, use_settings
from outreach.kit.clock import clock
from outreach.kit.crypto import encrypt_secret
from outreach.kit.db import Database, create_engine
from outreach.migrations.runner import upgrade
from outreach.models import (
    Campaign,
    CreditAccount,
    Mailbox,
    MailboxMode,
    MailboxProvider,
    ScheduledEmail,
    Template,
    User,
)
from outreach.models.campaign import CampaignStatus, EmailStatus

LATENCY = 0.05
CONCURRENCY = 20
TARGET = Target(">=", 0.7)
MEASURE = "sends/s, 100 Gmail mailboxes vs bare httpx"
BURN_ENV = "OUTREACH_BENCH_BURN"


def spin() -> None:
    """A CPU burner: other work keeping one core busy."""
    while True:
        pass


def start_burners(count: int) -> list[multiprocessing.process.BaseProcess]:
    context = multiprocessing.get_context("spawn")
    burners = [context.Process(target=spin, daemon=True) for _ in range(count)]
    for burner in burners:
        burner.start()
    return burners


def stop_burners(burners: list[multiprocessing.process.BaseProcess]) -> None:
    for burner in burners:
        burner.kill()
        burner.join()


def serve_fake_gmail(port: int) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    counter = iter(range(10**9))

    async def send(request: Request) -> JSONResponse:
        await request.body()
        await asyncio.sleep(LATENCY)
        number = next(counter)
        return JSONResponse(
            {"id": f"m{number:x}", "threadId": f"t{number:x}", "labelIds": ["SENT"]}
        )

    app = Starlette(routes=[Route("/gmail/v1/users/me/messages/send", send, methods=["POST"])])
    # Keep-alive as long as Google's front ends keep it (uvicorn's default is 5 s): on a
    # busy machine a pooled connection may sit idle that long, and a reset would be
    # a send of unknown outcome rather than a measurement.
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        timeout_keep_alive=120,
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def wait_for(url: str) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(600):  # a busy machine may take a while to start a process
            try:
                await client.get(url)
                return
            except httpx.HTTPError:
                await asyncio.sleep(0.1)
    raise RuntimeError("fake Gmail did not start")


async def seed(database: Database, mailboxes: int, per_mailbox: int, now: datetime) -> None:
    async with database.session() as session:
        user = User(email="sender@example.com", name="Sender", referral_code="SENDBENCH0")
        session.add(user)
        await session.flush()
        session.add(CreditAccount(user_id=user.id, balance=10**6))
        template = Template(user_id=user.id, name="t", current_version=1)
        session.add(template)
        await session.flush()
        rows: list[dict[str, Any]] = []
        for index in range(mailboxes):
            mailbox = Mailbox(
                user_id=user.id,
                provider=MailboxProvider.gmail,
                mode=MailboxMode.send_only,
                address=f"sender{index}@gmail.com",
                daily_cap=2000,
                timezone="UTC",
                granted_scopes=["https://www.googleapis.com/auth/gmail.send"],
                access_token_encrypted=encrypt_secret("bench-token"),
                refresh_token_encrypted=encrypt_secret("bench-refresh"),
                access_token_expires_at=now + timedelta(days=1),
            )
            session.add(mailbox)
            await session.flush()
            campaign = Campaign(
                user_id=user.id,
                name=f"c{index}",
                mailbox_id=mailbox.id,
                template_id=template.id,
                start_at=now,
                status=CampaignStatus.scheduled,
                template_version=1,
            )
            session.add(campaign)
            await session.flush()
            rows += [
                {
                    "id": uuid.uuid4(),
                    "created_at": now,
                    "updated_at": now,
                    "campaign_id": campaign.id,
                    "user_id": user.id,
                    "mailbox_id": mailbox.id,
                    "to_address": f"lead{index}-{n}@firm{n}.com",
                    "to_name": None,
                    "status": EmailStatus.pending,
                    "due_at": now - timedelta(minutes=1),
                    "subject": f"Hello {n}",
                    "body_text": "Hi,\n\nA short note.\n",
                    "rfc822_message_id": f"<{uuid.uuid4().hex}@gmail.com>",
                    "attempts": 0,
                    "refunded": False,
                }
                for n in range(per_mailbox)
            ]
        await session.execute(insert(ScheduledEmail), rows)


async def prepare(database: Database) -> None:
    """What the drafts job does after scheduling: send-only mailboxes keep each
    message encoded, so sending it is one call. Not timed: it is not sending."""
    from outreach.campaign.sending import prepare_campaign_emails

    async with database.session() as session:
        campaign_ids = list(await session.scalars(select(Campaign.id)))
    for campaign_id in campaign_ids:
        await prepare_campaign_emails(database, campaign_id)


async def project(database: Database, total: int) -> float:
    from outreach.campaign.sending import send_due_emails

    started = time.perf_counter()
    sent = 0
    while sent < total:
        done = await send_due_emails(database)
        if done == 0:
            raise RuntimeError("a tick sent nothing")
        sent += done
    elapsed = time.perf_counter() - started
    async with database.session() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(ScheduledEmail)
            .where(ScheduledEmail.status == EmailStatus.sent)
        )
    if count != total:
        raise RuntimeError(f"{count} sent, expected {total}")
    return elapsed


async def reset(database: Database, stored: dict[uuid.UUID, bytes], due: datetime) -> None:
    """Every email ready again with its stored message, for the next round."""
    table = ScheduledEmail.__table__
    async with database.session() as session:
        await session.execute(
            update(table)
            .where(table.c.id == bindparam("b_id"))
            .values(
                status=EmailStatus.ready,
                mime=bindparam("b_mime"),
                provider_message_id=None,
                sent_at=None,
                lease_until=None,
                attempts=0,
                due_at=due,
            ),
            [{"b_id": email_id, "b_mime": mime} for email_id, mime in stored.items()],
        )
        await session.execute(update(Campaign).values(status=CampaignStatus.scheduled))


async def stored_messages(database: Database) -> dict[uuid.UUID, bytes]:
    from sqlalchemy.orm import undefer

    async with database.session() as session:
        emails = await session.scalars(select(ScheduledEmail).options(undefer(ScheduledEmail.mime)))
        return {e.id: e.mime for e in emails if e.mime is not None}


async def encoded_messages(database: Database) -> list[str]:
    """The ``raw`` field of every prepared email, for the baseline to send."""
    from sqlalchemy.orm import undefer

    from outreach.mailbox.mime import EncodedMessage

    async with database.session() as session:
        emails = await session.scalars(select(ScheduledEmail).options(undefer(ScheduledEmail.mime)))
        return [
            EncodedMessage(e.mime, e.rfc822_message_id, "", ()).gmail_raw
            for e in emails
            if e.mime is not None
        ]


async def baseline(url: str, messages: list[str]) -> float:
    limit = asyncio.Semaphore(CONCURRENCY)
    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=100)) as client:

        async def one(raw: str) -> None:
            async with limit:
                response = await client.post(
                    f"{url}/gmail/v1/users/me/messages/send",
                    json={"raw": raw},
                    headers={"Authorization": "Bearer bench-token"},
                )
                response.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(one(raw) for raw in messages))
        return time.perf_counter() - started


async def main(mailboxes: int, per_mailbox: int, postgres: bool, rounds: int, burn: int) -> int:
    cores = "one core" if burn == 1 else f"{burn} cores"
    measure = f"sends/s, {cores} busy (burner), vs bare httpx" if burn else MEASURE
    if not postgres:
        report_not_run(
            "campaign_send",
            measure,
            target=TARGET,
            reason="needs PostgreSQL: set OUTREACH_TEST_DATABASE_URL or pass --postgres",
        )
        return 0
    port = free_port()
    server = multiprocessing.get_context("spawn").Process(
        target=serve_fake_gmail, args=(port,), daemon=True
    )
    server.start()
    gmail_url = f"http://127.0.0.1:{port}"
    name = f"outreach_bench_send_{os.getpid()}"
    try:
        await wait_for(gmail_url)
        url = await create_postgres_database(name)
        await asyncio.to_thread(upgrade, url)
        settings = Settings(
            _env_file=None,
            env=Environment.testing,
            secret_key="s" * 40,  # type: ignore[call-arg]
            database_url=url,
            gmail_api_url=gmail_url,
            gmail_quota_units_per_second=10**9,
            send_concurrency=CONCURRENCY,
            log_level="WARNING",
        )
        use_settings(settings)
        database = Database(create_engine(url, pool_size=CONCURRENCY + 5))
        now = datetime.now(UTC)
        clock.freeze(now)
        await seed(database, mailboxes, per_mailbox, now)
        await prepare(database)
        total = mailboxes * per_mailbox
        messages = await encoded_messages(database)
        assert len(messages) == total, "every email is prepared with its message"
        stored = await stored_messages(database)
        # Rounds alternate after a warm-up and the medians are compared: the
        # machine is shared, and one round of each would measure its neighbours.
        burners = start_burners(burn)
        try:
            await baseline(gmail_url, messages[: total // 4])
            bare_rounds, our_rounds, bare_cpu, our_cpu = [], [], [], []
            for _ in range(rounds):
                cpu = time.process_time()
                bare_rounds.append(await baseline(gmail_url, messages))
                bare_cpu.append(time.process_time() - cpu)
                cpu = time.process_time()
                our_rounds.append(await project(database, total))
                our_cpu.append(time.process_time() - cpu)
                await reset(database, stored, now - timedelta(minutes=1))
        finally:
            stop_burners(burners)
        bare, ours = statistics.median(bare_rounds), statistics.median(our_rounds)
        await database.dispose()
    finally:
        server.kill()
        await drop_postgres_database(name)
    bare_per_send = statistics.median(bare_cpu) / total
    our_per_send = statistics.median(our_cpu) / total
    ratio = (total / ours) / (total / bare)
    print(
        f"{total} sends over {mailboxes} mailboxes, {CONCURRENCY} in flight, "
        f"{LATENCY * 1000:.0f} ms fake latency"
    )
    print(
        f"project {total / ours:.0f}/s ({ours:.2f}s), bare httpx {total / bare:.0f}/s ({bare:.2f}s)"
        f" (medians of {rounds} rounds)" + (f", {burn} core(s) busy with a burner" if burn else "")
    )
    cpu_ratio = bare_per_send / our_per_send
    print(
        f"CPU per send in this process: project {our_per_send * 1e6:.0f} us,"
        f" bare httpx {bare_per_send * 1e6:.0f} us (bare / project {cpu_ratio:.2f});"
        f" rounds: project {', '.join(f'{c / total * 1e6:.0f}' for c in our_cpu)},"
        f" bare {', '.join(f'{c / total * 1e6:.0f}' for c in bare_cpu)} us"
    )
    met = report(
        "campaign_send",
        measure,
        ours=total / ours,
        baseline=total / bare,
        ratio=ratio,
        unit="sends/s",
        target=TARGET,
        database="postgresql",
        note=f"CPU/send cross-check {cpu_ratio:.2f}" + (f", {burn} burner(s)" if burn else ""),
    )
    return exit_code(met)


def cli(default_burn: int) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mailboxes", type=int, default=100)
    parser.add_argument("--per-mailbox", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--burn",
        type=int,
        default=int(os.environ.get(BURN_ENV, default_burn)),
        help=f"processes spinning on a core each during the rounds (${BURN_ENV})",
    )
    add_database_options(parser)
    arguments = parser.parse_args()
    return asyncio.run(
        main(
            arguments.mailboxes,
            arguments.per_mailbox,
            arguments.postgres,
            arguments.rounds,
            arguments.burn,
        )
    )


if __name__ == "__main__":
    sys.exit(cli(default_burn=0))
