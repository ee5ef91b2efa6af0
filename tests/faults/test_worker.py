"""A worker killed during a tick.

For real: a separate ``python`` process runs one send tick against the same
database and the fake Gmail, and is killed with SIGKILL while Gmail is sending
the first email. The next tick (here) reconciles its leases. Then, with the
in-process crash of ``tests/campaign/conftest.py`` (an exception nothing
catches), at every point of a tick over two mailboxes at once, including while
a lease is being reconciled. Every run ends sent once, none lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.campaign import sending
from outreach.config import Settings
from outreach.kit.clock import Clock
from outreach.kit.db import Database
from outreach.models.campaign import EmailStatus
from tests.campaign.conftest import CRASH_POINTS, Crash, arm_crash
from tests.campaign.test_gmail import START, scheduled_campaign
from tests.fakes.gmail import FakeGmail
from tests.fakes.google import FakeGoogle
from tests.faults.conftest import outbox_campaign, prepared_gmail_campaign
from tests.faults.invariants import check_invariants, gmail_deliveries, outbox_deliveries

SEND = "gmail.users.drafts.send"

WORKER = """
import asyncio, json, sys
from datetime import datetime
from outreach.campaign import sending
from outreach.config import Settings, use_settings
from outreach.kit.clock import clock
from outreach.kit.db import Database, set_database

config = json.loads(sys.argv[1])
settings = Settings(_env_file=None, **config["settings"])
use_settings(settings)
clock.freeze(datetime.fromisoformat(config["now"]))

async def tick() -> None:
    database = Database.from_settings(settings)
    set_database(database)
    print("ticking", flush=True)
    await sending.send_due_emails(database)

asyncio.run(tick())
"""


def _plain(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    return value


def settings_for_a_process(settings: Settings) -> dict[str, Any]:
    """The settings, secrets included, as another process can be given them."""
    return {name: _plain(getattr(settings, name)) for name in type(settings).model_fields}


async def wait_until(condition: Any, what: str) -> None:
    # A bound, not a timing: generous because a loaded 2-core machine starts
    # a Python process slowly.
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"never happened: {what}")


@pytest.mark.usefixtures("jobs_on")
async def test_sigkill_while_gmail_sends_is_reconciled_once(
    committing_database: Database,
    gmail_faults: Settings,
    fake_google: FakeGoogle,
    fake_gmail: FakeGmail,
    frozen_clock: Clock,
) -> None:
    frozen_clock.freeze(START - timedelta(hours=1))
    async with committing_database.session() as session:
        campaign, _ = await scheduled_campaign(session, fake_google, emails=2)
    await sending.prepare_campaign_emails(committing_database, campaign.id)
    fake_gmail.delay(SEND, 1.0)  # long enough to kill the worker while Gmail works
    now = START + timedelta(minutes=5)
    config = {"settings": settings_for_a_process(gmail_faults), "now": now.isoformat()}
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WORKER, json.dumps(config), stdout=asyncio.subprocess.PIPE
    )
    try:
        await wait_until(lambda: fake_gmail.called(SEND) == 1, "the worker sent to Gmail")
    finally:
        with contextlib.suppress(ProcessLookupError):
            worker.send_signal(signal.SIGKILL)
        assert await worker.wait() == -signal.SIGKILL
    fake_gmail.delays.clear()
    await wait_until(lambda: len(fake_gmail.sent("asha.rao@gmail.com")) == 1, "Gmail sent it")

    frozen_clock.freeze(now + sending.LEASE + timedelta(seconds=1))
    for _ in range(4):
        await sending.send_due_emails(committing_database)
        frozen_clock.advance(timedelta(minutes=10))
    async with committing_database.session() as session:
        summary = await check_invariants(session, delivered=gmail_deliveries(fake_gmail))
    assert summary.statuses == {EmailStatus.sent: 2}
    assert fake_gmail.called(SEND) == 2  # the killed one was found in SENT, not resent


@pytest.mark.parametrize("point", sorted(CRASH_POINTS))
async def test_killed_at_each_point_of_a_tick_over_two_mailboxes(
    point: str,
    database: Database,
    session: AsyncSession,
    gmail_faults: Settings,
    fake_google: FakeGoogle,
    fake_gmail: FakeGmail,
    frozen_clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await prepared_gmail_campaign(database, session, fake_google, frozen_clock, emails=2)
    outbox = await outbox_campaign(session, start_at=START)
    await sending.prepare_campaign_emails(database, outbox)
    # A lease to reconcile needs a worker that died holding it first.
    armed = [arm_crash(monkeypatch, "after_claim")] if point == "during_recovery" else []
    armed.append(arm_crash(monkeypatch, point, countdown=1 if point == "after_claim" else 0))
    frozen_clock.freeze(START + timedelta(minutes=5))
    await ticks_surviving_crashes(database, frozen_clock, 8)
    monkeypatch.undo()
    assert all(fired == [-1] for fired in armed), f"the crash at {point} never fired"

    delivered = gmail_deliveries(fake_gmail) + outbox_deliveries(gmail_faults.outbox_path)
    summary = await check_invariants(session, delivered=delivered)
    assert summary.statuses == {EmailStatus.sent: 4}


async def ticks_surviving_crashes(database: Database, clock: Clock, count: int) -> None:
    """Ticks a lease apart; a Crash is a dead worker, and the next one starts fresh."""
    for _ in range(count):
        with contextlib.suppress(Crash):
            await sending.send_due_emails(database)
        clock.advance(sending.LEASE + timedelta(seconds=1))
