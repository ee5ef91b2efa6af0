"""A verification run in its own process, killed with SIGKILL half-way, resumes from
its last checkpoint in another process: on SQLite (the saver's own file) and on
PostgreSQL (the official saver in the test database)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from outreach.config import Settings, use_settings
from outreach.credits.service import credit_service
from outreach.kit.db import Database
from outreach.models import LedgerEntry, VerificationJob
from outreach.recipient.verification import verification_service
from outreach.workflow.checkpoint import open_checkpointer
from outreach.workflow.verification import run_verification_job, verification_graph
from tests.conftest import create_user
from tests.fakes.dns import FakeDNS

ROOT = Path(__file__).resolve().parents[2]
DOMAINS = [f"k{i:02d}.test" for i in range(12)]
# Batches of 3 in address order; the first address of batch 3 waits for a DNS answer
# that only comes after the kill, so the process is always killed inside batch 3.
EMAILS = [f"a{i:02d}@{domain}" for i, domain in enumerate(DOMAINS)]
HANGING = DOMAINS[6]


class HangingDNS(FakeDNS):
    """Answers every name at once, except ``HANGING`` until ``release`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def resolve(self, request, handler):  # type: ignore[no-untyped-def]
        if str(request.q.qname).rstrip(".").lower() == HANGING and not self.release.is_set():
            self.release.wait(30)  # the killed process asked: answered late, to no one
            return request.reply()
        return super().resolve(request, handler)


@pytest.fixture
def dns() -> Iterator[HangingDNS]:
    server = HangingDNS()
    for domain in DOMAINS:
        server.add_mx(domain, f"mx.{domain}")
    server.start()
    yield server
    server.release.set()
    server.stop()


@pytest.fixture
def kill_settings(settings: Settings, dns: HangingDNS) -> Iterator[Settings]:
    changed = settings.model_copy(
        update={
            "dns_nameservers": [dns.nameserver],
            "dns_timeout_seconds": 30.0,
            "dns_cache_ttl_seconds": 0,
            "dns_negative_cache_ttl_seconds": 0,
            "verify_batch_size": 3,
        }
    )
    use_settings(changed)
    yield changed
    use_settings(settings)


def _environment(settings: Settings) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "OUTREACH_ENV": "testing",
        "OUTREACH_SECRET_KEY": settings.secret_key.get_secret_value(),
        "OUTREACH_DATABASE_URL": settings.database_url,
        "OUTREACH_CHECKPOINT_SQLITE_PATH": str(settings.checkpoint_sqlite_path),
        "OUTREACH_DNS_NAMESERVERS": ",".join(settings.dns_nameservers),
        "OUTREACH_DNS_TIMEOUT_SECONDS": str(settings.dns_timeout_seconds),
        "OUTREACH_DNS_CACHE_TTL_SECONDS": "0",
        "OUTREACH_DNS_NEGATIVE_CACHE_TTL_SECONDS": "0",
        "OUTREACH_VERIFY_BATCH_SIZE": "3",
        "OUTREACH_LOG_LEVEL": "WARNING",
    }


async def _checkpointed_done(job_id: uuid.UUID) -> int:
    async with open_checkpointer() as saver:
        graph = verification_graph.compile(checkpointer=saver)
        snapshot = await graph.aget_state({"configurable": {"thread_id": str(job_id)}})
    return int(snapshot.values.get("done", 0))


async def test_a_killed_process_resumes_at_the_next_batch(
    kill_settings: Settings,
    dns: HangingDNS,
    committing_database: Database,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with committing_database.sessionmaker() as session:
        user = await create_user(session, "ada@example.com", balance=30)
        job = await verification_service.start_bulk(
            session, user_id=user.id, list_id=None, emails=EMAILS, idempotency_key="kill"
        )
        await session.commit()  # the job runs in another process, not through a broker
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.workflow.crash_runner",
        str(job.id),
        cwd=ROOT,
        env=_environment(kill_settings),
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        # Wait (bounded) for batches 1-2 to be checkpointed; batch 3 then waits on DNS.
        for _ in range(1200):
            if process.returncode is not None or await _checkpointed_done(job.id) >= 6:
                break
            await asyncio.sleep(0.1)
        assert process.returncode is None, (await process.stderr.read()).decode()  # type: ignore[union-attr]
        assert await _checkpointed_done(job.id) == 6
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGKILL)
        await process.wait()
    assert process.returncode == -signal.SIGKILL
    dns.queries.clear()
    dns.release.set()
    starts: list[uuid.UUID] = []
    begin = verification_service.begin_bulk_run

    async def counted_begin(database: Database, *, job_id: uuid.UUID) -> object:
        starts.append(job_id)
        return await begin(database, job_id=job_id)

    monkeypatch.setattr(verification_service, "begin_bulk_run", counted_begin)

    await run_verification_job(committing_database, job_id=job.id)

    assert starts == []  # resumed from the checkpoint at batch 3, not started again

    def queries(batch: int) -> list[int]:
        return [dns.queries[(d, "MX")] for d in DOMAINS[(batch - 1) * 3 : batch * 3]]

    assert queries(1) == queries(2) == [0, 0, 0]  # checkpointed before the kill
    assert queries(3) == queries(4) == [1, 1, 1]
    async with committing_database.session() as session:
        done = await session.get(VerificationJob, job.id)
        assert done is not None
        assert (done.status, done.done, done.counts) == ("completed", 12, {"deliverable": 12})
        deltas = await session.scalars(
            select(LedgerEntry.delta).where(LedgerEntry.ref == f"verification_job:{job.id}")
        )
        assert list(deltas) == [-12]  # charged once; nothing unchecked, nothing refunded
        assert await credit_service.get_balance(session, user_id=user.id) == 30 - 12
