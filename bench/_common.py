"""What every benchmark shares: where its database is, and one way to report a result.

**Services.** A benchmark uses PostgreSQL when ``OUTREACH_TEST_DATABASE_URL`` is
set (the same variable as the test suite), on that server, in a fresh database
``outreach_bench_<name>_<pid>`` that is dropped afterwards; otherwise SQLite in a
temporary folder. ``--postgres`` forces PostgreSQL (the server from that variable,
else ``postgres@127.0.0.1:5432``), ``--sqlite`` forces SQLite. The PostgreSQL-only
benchmarks report "not run" without PostgreSQL. ``OUTREACH_TEST_REDIS_URL`` likewise
gives Redis to the benchmarks whose app would use it.

**Results.** Each script prints its own detail and verdict and exits 1 when a
target is missed, so it runs alone. :func:`report` prints one verdict line and,
when ``OUTREACH_BENCH_RESULTS`` names a file (``bench/run.py``, i.e. ``make bench``,
sets it), appends the row to it as one JSON line; the runner prints every row as
one table and writes ``bench/results/latest.json``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

RESULTS_ENV = "OUTREACH_BENCH_RESULTS"
DATABASE_ENV = "OUTREACH_TEST_DATABASE_URL"
REDIS_ENV = "OUTREACH_TEST_REDIS_URL"
DEFAULT_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"

Status = Literal["PASS", "FAIL", "SKIP"]


# --------------------------------------------------------------------------- services


def add_database_options(parser: argparse.ArgumentParser) -> None:
    """``--postgres`` / ``--sqlite``; the default follows ``OUTREACH_TEST_DATABASE_URL``."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--postgres",
        dest="postgres",
        action="store_true",
        default=bool(os.environ.get(DATABASE_ENV)),
        help=f"use a fresh PostgreSQL database (default when {DATABASE_ENV} is set)",
    )
    group.add_argument("--sqlite", dest="postgres", action="store_false", help="use SQLite")


def postgres_server_url() -> str:
    return os.environ.get(DATABASE_ENV) or DEFAULT_POSTGRES


def redis_url() -> str | None:
    return os.environ.get(REDIS_ENV) or None


async def _on_server(statement: str) -> None:
    engine = create_async_engine(postgres_server_url(), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            await connection.execute(text(statement))
    finally:
        await engine.dispose()


async def create_postgres_database(name: str) -> str:
    """A new, empty database on the PostgreSQL server; returns its URL."""
    await _on_server(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await _on_server(f'CREATE DATABASE "{name}"')
    return make_url(postgres_server_url()).set(database=name).render_as_string(hide_password=False)


async def drop_postgres_database(name: str) -> None:
    await _on_server(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@asynccontextmanager
async def fresh_database(name: str, *, postgres: bool) -> AsyncIterator[str]:
    """The URL of an empty database for one run (not migrated), removed afterwards."""
    if postgres:
        database = f"outreach_bench_{name}_{os.getpid()}"
        url = await create_postgres_database(database)
        try:
            yield url
        finally:
            await drop_postgres_database(database)
    else:
        with tempfile.TemporaryDirectory(prefix=f"outreach-bench-{name}-") as folder:
            yield f"sqlite+aiosqlite:///{Path(folder) / 'bench.db'}"


def database_label(url_or_postgres: str | bool) -> str:
    if isinstance(url_or_postgres, bool):
        return "postgresql" if url_or_postgres else "sqlite"
    return "postgresql" if url_or_postgres.startswith("postgresql") else "sqlite"


def spawn(target: Callable[..., None], *args: Any) -> multiprocessing.process.BaseProcess:
    """Start ``target(*args)`` in a fresh process (spawned: nothing of this one's event
    loop or connections is inherited), e.g. a fake service, so it has a core of its own."""
    process = multiprocessing.get_context("spawn").Process(target=target, args=args, daemon=True)
    process.start()
    return process


def load_average() -> str:
    """The 1/5/15-minute load average, to print beside a measurement (see the README)."""
    return "/".join(f"{value:.2f}" for value in os.getloadavg())


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Target:
    """``ratio <= 3``, ``ratio >= 0.7``, or a bound on our own figure (``< 300 MB``)."""

    op: Literal["<=", ">=", "<"]
    limit: float
    on: Literal["ratio", "ours"] = "ratio"

    def met(self, value: float) -> bool:
        if self.op == "<=":
            return value <= self.limit
        if self.op == ">=":
            return value >= self.limit
        return value < self.limit

    def describe(self, unit: str = "") -> str:
        if self.on == "ratio":
            return f"ratio {self.op} {self.limit:g}"
        return f"{self.op} {self.limit:g} {unit}".rstrip()


@dataclass
class Row:
    benchmark: str
    measure: str
    database: str
    unit: str
    ours: float | None
    baseline: float | None
    ratio: float | None
    target: str
    status: Status
    note: str = ""


def report(
    benchmark: str,
    measure: str,
    *,
    ours: float,
    target: Target,
    unit: str = "",
    baseline: float | None = None,
    ratio: float | None = None,
    database: str = "-",
    note: str = "",
) -> bool:
    """Print the verdict of one target and hand the row to the runner; True when met.

    ``ratio`` defaults to ours / baseline."""
    if ratio is None and baseline:
        ratio = ours / baseline
    value = ours if target.on == "ours" else ratio
    if value is None:
        raise ValueError(f"{benchmark}: a ratio target needs a baseline or a ratio")
    passed = target.met(value)
    _emit(
        Row(
            benchmark=benchmark,
            measure=measure,
            database=database,
            unit=unit,
            ours=ours,
            baseline=baseline,
            ratio=ratio,
            target=target.describe(unit),
            status="PASS" if passed else "FAIL",
            note=note,
        )
    )
    return passed


def report_not_run(benchmark: str, measure: str, *, target: Target, reason: str) -> None:
    """A target that could not be measured here (say why), e.g. no PostgreSQL."""
    _emit(
        Row(
            benchmark=benchmark,
            measure=measure,
            database="-",
            unit="",
            ours=None,
            baseline=None,
            ratio=None,
            target=target.describe(),
            status="SKIP",
            note=reason,
        )
    )


def _emit(row: Row) -> None:
    figures = f"ours {format_figure(row.ours, row.unit)}"
    if row.baseline is not None:
        figures += f", baseline {format_figure(row.baseline, row.unit)}"
    if row.ratio is not None:
        figures += f", ratio {row.ratio:.2f}"
    verdict = {"PASS": "PASS", "FAIL": "FAIL", "SKIP": "NOT RUN"}[row.status]
    detail = f"{figures}; target {row.target}" if row.status != "SKIP" else row.note
    print(f"[{row.benchmark}] {row.measure}: {detail}: {verdict}", flush=True)
    destination = os.environ.get(RESULTS_ENV)
    if destination:
        with open(destination, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(asdict(row)) + "\n")


def format_figure(value: float | None, unit: str = "") -> str:
    """1,234 (large or whole numbers) or 1.23, with the unit."""
    if value is None:
        return "-"
    whole = abs(value) >= 100 or float(value).is_integer()
    return f"{value:,.0f} {unit}".rstrip() if whole else f"{value:,.2f} {unit}".rstrip()


def exit_code(*met: bool) -> int:
    """0 when every target was met (the process exit status of a script run alone)."""
    return 0 if all(met) else 1


if __name__ == "__main__":
    sys.exit("this module is imported by the benchmarks; run bench/run.py or one benchmark")
