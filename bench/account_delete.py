"""Deleting one account among 1,000,000 audit rows (and 10,000 dead-letter jobs).

**project**: ``erase_account`` (and its commit) for a user with a few audit rows of
their own, once the tables hold 1,000,000 audit rows and 10,000 failed jobs of
other users.
**baseline**: the same deletion of an identical user while those tables are
almost empty, in the same run on the same database: the ratio shows what the
table sizes cost (1 would be none; a deletion that read the tables whole grew
with them).

Target: under 2 s with the million rows (the ratio is printed beside it). The
rows are made with set-based ``INSERT … SELECT`` (a recursive CTE on SQLite,
``generate_series`` on PostgreSQL), copying a template row so every column has
the type the models give it. SQLite in a temporary folder by default;
``--postgres`` (the default when ``OUTREACH_TEST_DATABASE_URL`` is set) uses a
fresh PostgreSQL database (bench/_common.py).

    uv run python bench/account_delete.py [--audit-rows 1000000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from _common import (
    Target,
    add_database_options,
    database_label,
    exit_code,
    fresh_database,
    report,
)
from sqlalchemy import text

from outreach import tasks  # noqa: F401 - registers the jobs deletion sends
from outreach.account.erasure import erase_account
from outreach.auth.service import auth_service
from outreach.config import Environment, Settings, use_settings
from outreach.kit import jobs
from outreach.kit.audit import record_audit
from outreach.kit.db import Database, set_database
from outreach.migrations.runner import upgrade
from outreach.models import AuditLog, FailedJob, User

FAILED_JOBS = 10_000


async def make_user(database: Database, email: str) -> uuid.UUID:
    """A user with the audit rows of a short life: sign-up, logins, a few actions."""
    async with database.session() as session:
        result = await auth_service.dev_login(
            session, email=email, name="Bench", user_agent=None, ip=None, previous_token=None
        )
        user = result.user
        for number in range(20):
            await record_audit(
                session,
                action="bench.action",
                actor_id=user.id,
                target_type="user",
                target_id=user.id,
                details={"address": email, "n": number},
            )
        return user.id


async def delete_user(database: Database, user_id: uuid.UUID) -> float:
    started = time.perf_counter()
    async with database.session() as session:
        user = await session.get(User, user_id)
        assert user is not None
        await erase_account(session, user=user)
    return time.perf_counter() - started


def _numbers(dialect: str, count: int) -> tuple[str, str]:
    """A CTE prefix and a FROM item giving ``n`` = 1..count."""
    if dialect == "postgresql":
        return "", f"generate_series(1, {count}) AS numbers(n)"
    cte = (
        "WITH RECURSIVE numbers(n) AS "
        f"(SELECT 1 UNION ALL SELECT n + 1 FROM numbers WHERE n < {count}) "
    )
    return cte, "numbers"


def _new_id(dialect: str) -> str:
    # The id column as SQLAlchemy stores a UUID: native on PostgreSQL, 32 hex on SQLite.
    return "gen_random_uuid()" if dialect == "postgresql" else "lower(hex(randomblob(16)))"


async def fill(database: Database, audit_rows: int) -> None:
    """Other users' rows, copied set-based from one template row of each table."""
    async with database.session() as session:
        other = await make_user(database, "someone.else@example.com")
        template = AuditLog(
            actor_id=other,
            action="mailbox.connected",
            target_type="mailbox",
            target_id=str(uuid.uuid4()),
            details={"address": "someone.else@example.com", "mode": "full"},
            ip="203.0.113.7",
        )
        dead = FailedJob(
            task_name="recipient.verify_bulk",
            task_id=uuid.uuid4().hex,
            args={"args": [], "kwargs": {"job_id": str(uuid.uuid4())}},
            error="DNSError: the resolver timed out for someone.else@example.com",
            traceback="Traceback (most recent call last): ...",
            attempts=4,
            retried_at=None,
        )
        session.add_all([template, dead])
        await session.flush()
        dialect = database.dialect
        cte, numbers = _numbers(dialect, audit_rows)
        await session.execute(
            text(
                f"{cte}INSERT INTO audit_logs (id, created_at, actor_id, action, target_type, "
                "target_id, details, ip, request_id) "
                f"SELECT {_new_id(dialect)}, t.created_at, t.actor_id, t.action, t.target_type, "
                "'thing-' || n, t.details, t.ip, t.request_id "
                f"FROM audit_logs AS t, {numbers} WHERE t.id = :template"
            ),
            {"template": template.id if dialect == "postgresql" else template.id.hex},
        )
        cte, numbers = _numbers(dialect, FAILED_JOBS)
        await session.execute(
            text(
                f"{cte}INSERT INTO failed_jobs (id, created_at, task_name, task_id, args, error, "
                "traceback, attempts, retried_at) "
                f"SELECT {_new_id(dialect)}, f.created_at, f.task_name, f.task_id || n, f.args, "
                "f.error, f.traceback, f.attempts, f.retried_at "
                f"FROM failed_jobs AS f, {numbers} WHERE f.id = :dead"
            ),
            {"dead": dead.id if dialect == "postgresql" else dead.id.hex},
        )
    async with database.engine.connect() as connection:  # statistics, as in production
        await connection.execute(text("ANALYZE"))
        await connection.commit()


async def rounds_of_deletion(database: Database, rounds: int, label: str) -> list[float]:
    times = []
    for number in range(rounds):
        user_id = await make_user(database, f"{label}{number}@example.com")
        times.append(await delete_user(database, user_id))
    return times


async def main(audit_rows: int, rounds: int, postgres: bool) -> int:
    async with fresh_database("account_delete", postgres=postgres) as url:
        await asyncio.to_thread(upgrade, url)
        with tempfile.TemporaryDirectory() as folder:
            settings = Settings(
                _env_file=None,
                env=Environment.testing,
                secret_key="b" * 40,
                database_url=url,  # type: ignore[call-arg]
                storage_path=Path(folder) / "storage",
                embedded_scheduler=False,
                jobs_inline=False,
                log_level="WARNING",
            )
            use_settings(settings)
            database = Database.from_settings(settings)
            set_database(database)
            broker = jobs.create_broker(settings)
            jobs.set_broker(broker)
            await broker.startup()
            try:
                await rounds_of_deletion(database, 3, "warmup")
                empty = await rounds_of_deletion(database, rounds, "small")
                started = time.perf_counter()
                await fill(database, audit_rows)
                print(f"filled {audit_rows:,} audit rows in {time.perf_counter() - started:.1f} s")
                full = await rounds_of_deletion(database, rounds, "large")
            finally:
                await broker.shutdown()
                await database.dispose()
    ours, baseline = statistics.median(full), statistics.median(empty)
    print(f"deletion: {[f'{t:.3f}' for t in full]} s with the rows, {empty} s without")
    met = report(
        "account_delete",
        f"delete one user among {audit_rows:,} audit rows",
        ours=ours,
        baseline=baseline,
        unit="s",
        target=Target("<", 2, on="ours"),
        database=database_label(postgres),
    )
    return exit_code(met)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--audit-rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    add_database_options(parser)
    arguments = parser.parse_args()
    sys.exit(asyncio.run(main(arguments.audit_rows, arguments.rounds, arguments.postgres)))
