"""Credit debits per second through the ledger service versus bare SQL, on PostgreSQL.

Both variants debit 1 credit per transaction, on the same engine and connection
pool (``outreach.kit.db.create_engine``), in the same run:

* **service**: ``credit_service.apply_ledger_entry(session, user_id=..., delta=-1,
  reason="verify", ref=None, idempotency_key=<unique>)`` inside
  ``Database(engine).session()`` (which commits);
* **bare**: the same essential work in plain SQL, one transaction per debit
  (``engine.begin()``)::

      UPDATE credit_accounts SET balance = balance - 1
       WHERE user_id = :u AND balance - 1 >= 0 RETURNING balance
      INSERT INTO ledger_entries (id, created_at, user_id, delta, reason, ref,
                                  idempotency_key, balance_after) VALUES (...)

Two scenarios, each run with N concurrent asyncio workers doing a fixed number
of debits each:

* **per-worker accounts**: one user (``users`` + ``credit_accounts`` row with a
  large balance) per worker, so workers do not contend on one row;
* **shared account**: every worker debits ONE account (row-lock contention).

Rounds alternate bare, service, bare, service, ... after a warm-up round of each,
and the medians are compared because the machine is shared and noisy.

The run uses a fresh database ``outreach_bench_credits_<pid>`` (created through an
AUTOCOMMIT connection, migrated with ``outreach.migrations.runner.upgrade``, dropped
at the end). Afterwards every
account is checked: balance == initial + sum of its ledger deltas, and the
``balance_after`` values of its entries are distinct and end at the balance.
Statements per debit are counted with engine events for one debit of each variant,
and a short sequential loop reports wall time and client (Python) CPU per debit:
on a small shared machine the client CPU, not PostgreSQL, tends to set the pace.

Target: service / bare (per-worker accounts) >= 0.5. Prints PASS or FAIL; exits 1
on FAIL or when the invariant is violated.

    uv run python bench/credits_debit.py [--rounds 3] [--workers 8] [--debits 40]

PostgreSQL only: the server of ``OUTREACH_TEST_DATABASE_URL``; ``--postgres`` without
it uses ``postgresql+asyncpg://postgres@127.0.0.1:5432/postgres``. Without either the
target is reported as not run.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from _common import (
    Target,
    add_database_options,
    exit_code,
    fresh_database,
    report,
    report_not_run,
)
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from outreach.credits.service import credit_service
from outreach.kit.db import Database, create_engine
from outreach.migrations.runner import upgrade
from outreach.models import CreditAccount, User

TARGET_RATIO = 0.5
MEASURE = "debits/s, ledger service vs plain SQL"
INITIAL_BALANCE = 10_000_000

BARE_UPDATE = text(
    "UPDATE credit_accounts SET balance = balance - 1 "
    "WHERE user_id = :u AND balance - 1 >= 0 RETURNING balance"
)
BARE_INSERT = text(
    "INSERT INTO ledger_entries "
    "(id, created_at, user_id, delta, reason, ref, idempotency_key, balance_after) "
    "VALUES (:id, :created_at, :user_id, :delta, :reason, :ref, :key, :balance_after)"
)

# create_engine sets pool_pre_ping; asyncpg pings outside a transaction with
# BEGIN; ";"; ROLLBACK (SQLAlchemy 2.x), i.e. 3 round trips per pool checkout.
PING = "pool checkout (pre-ping: BEGIN; ';'; ROLLBACK)"
PING_ROUND_TRIPS = 3

_keys = itertools.count()


def next_key(variant: str) -> str:
    return f"bench-{variant}-{os.getpid()}-{next(_keys)}"


# --------------------------------------------------------------------------- debits


async def debit_bare(engine: AsyncEngine, user_id: uuid.UUID) -> None:
    async with engine.begin() as connection:
        balance = (await connection.execute(BARE_UPDATE, {"u": user_id})).scalar_one_or_none()
        if balance is None:
            raise RuntimeError("bare debit: insufficient balance")
        await connection.execute(
            BARE_INSERT,
            {
                "id": uuid.uuid4(),
                "created_at": datetime.now(UTC),
                "user_id": user_id,
                "delta": -1,
                "reason": "verify",
                "ref": None,
                "key": next_key("bare"),
                "balance_after": balance,
            },
        )


async def debit_service(database: Database, user_id: uuid.UUID) -> None:
    async with database.session() as session:
        await credit_service.apply_ledger_entry(
            session,
            user_id=user_id,
            delta=-1,
            reason="verify",
            ref=None,
            idempotency_key=next_key("service"),
        )


# --------------------------------------------------------------------------- rounds


Debit = Callable[[uuid.UUID], Awaitable[None]]


async def run_round(debit: Debit, accounts: list[uuid.UUID], debits_per_worker: int) -> float:
    """Debits per second with one task per entry of ``accounts``."""

    async def worker(user_id: uuid.UUID) -> None:
        for _ in range(debits_per_worker):
            await debit(user_id)

    started = time.perf_counter()
    await asyncio.gather(*(worker(user_id) for user_id in accounts))
    elapsed = time.perf_counter() - started
    return len(accounts) * debits_per_worker / elapsed


async def run_scenario(
    name: str,
    variants: dict[str, Debit],
    accounts: list[uuid.UUID],
    rounds: int,
    debits_per_worker: int,
) -> dict[str, list[float]]:
    print(f"\n== {name}")
    for variant, debit in variants.items():  # warm-up: pool, prepared statements, caches
        await run_round(debit, accounts, max(debits_per_worker // 4, 5))
        print(f"  warm-up {variant:<7} done")
    results: dict[str, list[float]] = {variant: [] for variant in variants}
    for round_no in range(1, rounds + 1):
        for variant, debit in variants.items():
            rate = await run_round(debit, accounts, debits_per_worker)
            results[variant].append(rate)
            print(f"  round {round_no} {variant:<7} {rate:8.0f} debits/s")
    return results


# --------------------------------------------------------------------------- statement counts


class StatementCounter:
    """Counts what the engine sends per debit: statements, BEGIN, COMMIT, pool pings."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.counts: Counter[str] = Counter()
        self.enabled = False
        sync_engine = engine.sync_engine

        @event.listens_for(sync_engine, "before_cursor_execute")
        def _statement(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            if self.enabled:
                self.counts[" ".join(statement.split())[:70]] += 1

        @event.listens_for(sync_engine, "begin")
        def _begin(_conn: Any) -> None:
            if self.enabled:
                self.counts["BEGIN"] += 1

        @event.listens_for(sync_engine, "commit")
        def _commit(_conn: Any) -> None:
            if self.enabled:
                self.counts["COMMIT"] += 1

        @event.listens_for(sync_engine.pool, "checkout")
        def _checkout(*_args: Any) -> None:
            if self.enabled:
                self.counts[PING] += 1

    async def measure(self, debit: Debit, user_id: uuid.UUID) -> Counter[str]:
        self.counts = Counter()
        self.enabled = True
        try:
            await debit(user_id)
        finally:
            self.enabled = False
        return self.counts


async def sequential_cost(debit: Debit, user_id: uuid.UUID, count: int) -> tuple[float, float]:
    """Wall ms and client-process CPU ms per debit, one debit at a time."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(count):
        await debit(user_id)
    return (
        (time.perf_counter() - wall) * 1000 / count,
        (time.process_time() - cpu) * 1000 / count,
    )


def print_counts(variant: str, counts: Counter[str]) -> None:
    round_trips = sum(n * (PING_ROUND_TRIPS if key == PING else 1) for key, n in counts.items())
    print(f"  {variant}: {round_trips} round trips per debit")
    for key, n in counts.items():
        print(f"    {n} x {key}")


# --------------------------------------------------------------------------- setup / checks


async def create_users(database: Database, count: int) -> list[uuid.UUID]:
    ids: list[uuid.UUID] = []
    async with database.session() as session:
        for _ in range(count):
            user = User(email=f"bench-{uuid.uuid4().hex}@example.com")
            session.add(user)
            await session.flush()
            session.add(CreditAccount(user_id=user.id, balance=INITIAL_BALANCE))
            ids.append(user.id)
    return ids


async def check_invariant(database: Database, initial: dict[uuid.UUID, int]) -> int:
    """The number of accounts breaking the invariant (0 when it holds)."""
    query = text(
        "SELECT a.user_id, a.balance, COALESCE(SUM(e.delta), 0) AS total, COUNT(e.id) AS n, "
        "COUNT(DISTINCT e.balance_after) AS distinct_after, MIN(e.balance_after) AS min_after "
        "FROM credit_accounts a LEFT JOIN ledger_entries e ON e.user_id = a.user_id "
        "GROUP BY a.user_id, a.balance"
    )
    violations = 0
    print("\n== invariant: balance == initial + sum(ledger deltas)")
    async with database.session() as session:
        rows = (await session.execute(query)).all()
    for user_id, balance, total, n, distinct_after, min_after in rows:
        expected = initial[user_id] + total
        good = balance == expected and distinct_after == n and (n == 0 or min_after == balance)
        violations += not good
        print(
            f"  {str(user_id)[:8]}  balance {balance}  initial {initial[user_id]}  "
            f"entries {n}  sum {total}  -> {'ok' if good else 'VIOLATED'}"
        )
    if len(rows) != len(initial):
        print(f"  expected {len(initial)} accounts, found {len(rows)}")
        violations += abs(len(initial) - len(rows))
    return violations


# --------------------------------------------------------------------------- main


def ratio_line(name: str, results: dict[str, list[float]]) -> float:
    bare = statistics.median(results["bare"])
    service = statistics.median(results["service"])
    ratio = service / bare
    print(f"  {name:<36} bare {bare:7.0f}/s  service {service:7.0f}/s  ratio {ratio:.2f}")
    return ratio


async def bench(args: argparse.Namespace) -> int:
    if not args.postgres:
        report_not_run(
            "credits_debit",
            MEASURE,
            target=Target(">=", TARGET_RATIO),
            reason="needs PostgreSQL: set OUTREACH_TEST_DATABASE_URL or pass --postgres",
        )
        return 0
    async with fresh_database("credits", postgres=True) as url:
        print(f"database {url.rsplit('/', 1)[1]} created")
        return await bench_on(url, args)


async def bench_on(url: str, args: argparse.Namespace) -> int:
    engine: AsyncEngine | None = None
    try:
        started = time.perf_counter()
        await asyncio.to_thread(upgrade, url)
        print(f"migrated in {time.perf_counter() - started:.1f}s")

        engine = create_engine(url)
        database = Database(engine)
        counter = StatementCounter(engine)
        per_worker = await create_users(database, args.workers)
        (shared,) = await create_users(database, 1)
        initial = dict.fromkeys([*per_worker, shared], INITIAL_BALANCE)

        def bare(user_id: uuid.UUID) -> Awaitable[None]:
            return debit_bare(engine, user_id)

        def service(user_id: uuid.UUID) -> Awaitable[None]:
            return debit_service(database, user_id)

        variants: dict[str, Debit] = {"bare": bare, "service": service}
        pool = engine.pool
        print(
            f"{args.workers} concurrent workers x {args.debits} debits per round, "
            f"{args.rounds} rounds per variant after a warm-up, one transaction per debit, "
            f"pool {pool.size()}+{getattr(pool, '_max_overflow', '?')} connections"
        )
        bench_started = time.perf_counter()
        separate = await run_scenario(
            f"scenario 1: one account per worker ({args.workers} accounts, no row contention)",
            variants,
            per_worker,
            args.rounds,
            args.debits,
        )
        shared_results = await run_scenario(
            f"scenario 2: all {args.workers} workers debit ONE shared account (contention)",
            variants,
            [shared] * args.workers,
            args.rounds,
            args.debits,
        )
        bench_seconds = time.perf_counter() - bench_started

        print("\n== round trips per debit (one debit each, no concurrency)")
        for variant, debit in variants.items():
            print_counts(variant, await counter.measure(debit, per_worker[0]))
        print(f"\n== cost per debit, sequential ({args.sequential} debits each, one worker)")
        for variant, debit in variants.items():
            wall_ms, cpu_ms = await sequential_cost(debit, per_worker[0], args.sequential)
            print(f"  {variant:<7} wall {wall_ms:5.2f} ms  client CPU {cpu_ms:5.2f} ms")

        violations = await check_invariant(database, initial)

        print(f"\n== medians ({args.rounds} rounds each, {bench_seconds:.1f}s of load)")
        ratio_line("per-worker accounts (target)", separate)
        shared_ratio = ratio_line("one shared account (contention)", shared_results)
        print(f"service/bare (shared account)      = {shared_ratio:.2f} (informational)\n")
        met = report(
            "credits_debit",
            MEASURE,
            ours=statistics.median(separate["service"]),
            baseline=statistics.median(separate["bare"]),
            unit="debits/s",
            target=Target(">=", TARGET_RATIO),
            database="postgresql",
            note=f"one account per worker; shared account {shared_ratio:.2f}",
        )
        holds = report(
            "credits_debit",
            "accounts breaking balance == sum of ledger",
            ours=violations,
            unit="accounts",
            target=Target("<=", 0, on="ours"),
            database="postgresql",
        )
        return exit_code(met, holds)
    finally:
        if engine is not None:
            await engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds per variant")
    parser.add_argument("--workers", type=int, default=8, help="concurrent asyncio tasks")
    parser.add_argument("--debits", type=int, default=40, help="debits per worker per round")
    parser.add_argument(
        "--sequential", type=int, default=100, help="debits per variant for the cost-per-debit loop"
    )
    add_database_options(parser)
    return asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
