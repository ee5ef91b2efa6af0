"""Bulk verification of 10,000 addresses over 1,000 domains against a local DNS server.

Project: ``verification_service.start_bulk`` (charges once, stores the addresses)
and the job ``run_verification_job`` (the checkpointed graph: batches, one MX query
per unique domain, results stored, recipients updated, refund) on a fresh database.
Baseline, same run, same DNS server (tests/fakes/dns.py, dnslib on 127.0.0.1):
1,000 bare concurrent ``resolver.resolve(domain, "MX")`` calls through the same
dnspython resolver, bounded by the same ``OUTREACH_DNS_CONCURRENCY``.

After a warm-up of each, rounds (3 by default) alternate baseline and project, each
round on new domain names so that no cache answers; the verdict compares medians.
Each round prints both walls, the CPU time this process spent on each (the
cross-check to trust when the machine is busy), and, apart, the time of
``start_bulk`` itself (the request: checking and storing the addresses, charging),
which the job's time does not include.
Targets: at most 1,000 DNS queries received by the server in any project round,
and median project job time / median baseline time <= 2. Prints PASS or FAIL.

    uv run python bench/recipient_verify.py [--emails 10000] [--domains 1000] [--rounds 3]

Database: a SQLite file in a temporary folder, or a fresh PostgreSQL database when
``OUTREACH_TEST_DATABASE_URL`` is set or ``--postgres`` is given (bench/_common.py).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing
import statistics
import sys
import tempfile
import time
import uuid
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import (
    Target,
    add_database_options,
    database_label,
    exit_code,
    fresh_database,
    report,
)
from tests.fakes.dns import FakeDNS

from outreach.config import Environment, Settings, use_settings
from outreach.credits.service import credit_service
from outreach.kit.db import Database, create_engine
from outreach.migrations.runner import upgrade
from outreach.models import User, VerificationJob
from outreach.recipient.dns import get_resolver
from outreach.recipient.verification import verification_service
from outreach.workflow.verification import run_verification_job


def _serve_dns(connection: Connection, wildcard: str) -> None:
    """The fake DNS server in its own process, as a real one would be: its CPU
    is not the client's. Commands over the pipe: "port", "reset", "count", "stop"."""
    dns = FakeDNS()
    dns.wildcard_mx = wildcard
    dns.start()
    while True:
        command = connection.recv()
        if command == "port":
            connection.send(dns.port)
        elif command == "reset":
            dns.queries.clear()
            connection.send(True)
        elif command == "count":
            connection.send(dns.total_queries)
        else:
            dns.stop()
            connection.send(True)
            return


def _ask(connection: Connection, command: str) -> Any:
    connection.send(command)
    return connection.recv()


def _clean_heap() -> None:
    """Collect what came before, so that a timed part does not pay for a full
    collection its predecessor made due (each part starts as in a fresh worker)."""
    gc.collect()


async def baseline(settings: Settings, domains: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of the bare lookups."""
    resolver = get_resolver(settings)
    limit = asyncio.Semaphore(settings.dns_concurrency)

    async def one(domain: str) -> None:
        async with limit:
            await resolver.resolve(domain, "MX", search=False)

    _clean_heap()
    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one(domain) for domain in domains))
    return time.perf_counter() - started, time.process_time() - cpu


async def project(
    database: Database, emails: list[str]
) -> tuple[float, float, float, VerificationJob]:
    """Seconds of ``start_bulk`` (not timed), wall and CPU seconds of the job, the job."""
    async with database.session() as session:
        user = User(email=f"bench-{uuid.uuid4().hex[:8]}@example.com")
        session.add(user)
        await session.flush()
        await credit_service.apply_ledger_entry(
            session,
            user_id=user.id,
            delta=len(emails),
            reason="admin_grant",
            ref=None,
            idempotency_key=f"bench:{user.id}",
        )
    started = time.perf_counter()
    async with database.sessionmaker() as session:
        job = await verification_service.start_bulk(
            session, user_id=user.id, list_id=None, emails=emails, idempotency_key="bench"
        )
        await session.commit()  # the job runs directly below, not through a broker
    request = time.perf_counter() - started
    _clean_heap()  # the request's garbage is the API process's, not the worker's
    queued, cpu = time.perf_counter(), time.process_time()
    await run_verification_job(database, job_id=job.id)
    finished, cpu = time.perf_counter(), time.process_time() - cpu
    async with database.session() as session:
        done = await session.get(VerificationJob, job.id)
        assert done is not None
    return request, finished - queued, cpu, done


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--emails", type=int, default=10_000)
    parser.add_argument("--domains", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=3)
    add_database_options(parser)
    args = parser.parse_args()
    async with fresh_database("verify", postgres=args.postgres) as url:
        return await run(args, url)


async def run(args: argparse.Namespace, url: str) -> int:
    ours, theirs = multiprocessing.Pipe()
    server = multiprocessing.get_context("spawn").Process(
        target=_serve_dns, args=(theirs, ".bench.test"), daemon=True
    )
    server.start()
    nameserver = f"127.0.0.1:{_ask(ours, 'port')}"
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        env=Environment.testing,
        database_url=url,
        dns_nameservers=[nameserver],
        verify_bulk_max_emails=args.emails,
        # The run's LangGraph checkpoints (SQLite: their own file; PostgreSQL: the database)
        checkpoint_sqlite_path=Path(tempfile.mkdtemp(prefix="outreach-bench-")) / "cp.sqlite",
    )
    use_settings(settings)
    await asyncio.to_thread(upgrade, url)
    database = Database(create_engine(url))
    try:
        warm = [f"warm{i}.bench.test" for i in range(50)]
        await baseline(settings, warm)
        await project(database, [f"person{i}@w{i % 50}.bench.test" for i in range(500)])
        bases, jobs, queries = [], [], []
        for number in range(args.rounds):
            # Fresh names every round: nothing is in the resolver's or our cache.
            suffix = f"r{number}.bench.test"
            names = [f"b{i}.{suffix}" for i in range(args.domains)]
            base_time, base_cpu = await baseline(settings, names)
            bases.append(base_time)
            _ask(ours, "reset")
            emails = [f"person{i}@d{i % args.domains}.{suffix}" for i in range(args.emails)]
            request, job_time, job_cpu, job = await project(database, emails)
            queries.append(_ask(ours, "count"))
            jobs.append(job_time)
            assert job.status == "completed", job.status
            assert job.done == args.emails, job.done
            print(
                f"round {number + 1}: baseline {base_time:.2f}s (CPU {base_cpu:.2f}s), "
                f"job {job_time:.2f}s (CPU {job_cpu:.2f}s), ratio {job_time / base_time:.2f}, "
                f"{queries[-1]} DNS queries, {job.counts}; start_bulk {request:.2f}s, not timed"
            )
    finally:
        await database.dispose()
        _ask(ours, "stop")
        server.join(5)
    base, job_time = statistics.median(bases), statistics.median(jobs)
    ratio = job_time / base
    print(f"addresses: {args.emails}  domains: {args.domains}  database: {url.split(':')[0]}")
    print(f"baseline ({args.domains} bare concurrent MX lookups), median: {base:.2f}s")
    print(f"project job, median of {args.rounds}: {job_time:.2f}s")
    print(f"job / baseline: {ratio:.2f}   DNS queries received, most in a round: {max(queries)}")
    database = database_label(url)
    return exit_code(
        report(
            "recipient_verify",
            f"bulk verify {args.emails:,} addresses vs {args.domains:,} bare MX lookups",
            ours=job_time,
            baseline=base,
            unit="s",
            target=Target("<=", 2),
            database=database,
        ),
        report(
            "recipient_verify",
            f"DNS queries for {args.domains:,} domains",
            ours=max(queries),
            unit="queries",
            target=Target("<=", args.domains, on="ours"),
            database=database,
        ),
    )


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
