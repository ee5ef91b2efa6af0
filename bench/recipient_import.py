"""Importing a 100,000-row CSV and XLSX end to end versus csv.reader + one bulk insert.

Project: ``import_service.start_upload`` (stores the file, checks the header in the
parsing pool) then ``import_service.process_upload`` (the job: chunks read in the
pool, mapped, normalised, deduplicated, suppression-checked, inserted per chunk,
progress committed per chunk) into a fresh list.
Baseline, same run, same database: ``csv.reader`` over the same CSV file and one
executemany INSERT of every row into ``recipients`` (no validation).

Target: project / baseline time <= 3 for the CSV and for the XLSX (whose baseline is
the same CSV baseline, since csv.reader cannot read XLSX), medians of ``--rounds``
alternating rounds (3 by default), and peak memory (the API process and every
parsing worker, VmHWM) under 300 MB. Prints PASS or FAIL.

    uv run python bench/recipient_import.py [--rows 100000] [--rounds 3]

Database: a SQLite file in a temporary folder, or a fresh PostgreSQL database when
``OUTREACH_TEST_DATABASE_URL`` is set or ``--postgres`` is given (bench/_common.py).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import os
import resource
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
from fastapi import UploadFile
from sqlalchemy import delete, insert

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.recipient.xlsx import make_xlsx

from outreach.config import Environment, Settings, use_settings
from outreach.kit.db import Database, create_engine
from outreach.kit.parsing_pool import ParsingPool, set_parsing_pool
from outreach.kit.storage import LocalStorage
from outreach.migrations.runner import upgrade
from outreach.models import ListKind, Recipient, RecipientList, User
from outreach.recipient.importing import import_service

HEADER = ["Email", "First Name", "Last Name", "Company", "Title", "Notes"]


def rows(count: int) -> list[list[str]]:
    return [
        [
            f"Person.{i}@Company{i % 997}.example",
            f"First{i}",
            f"Last{i}",
            f"Company {i % 997}",
            "Recruiter",
            f"note {i}",
        ]
        for i in range(count)
    ]


def family() -> set[int]:
    """This process and its descendants (forkserver, parsing workers)."""
    pids = {os.getpid()}
    for _ in range(3):  # children, grandchildren (forkserver → workers)
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(stat[1]) in pids:
                    pids.add(int(entry.name))
    return pids


def reset_peak_memory() -> None:
    """Start the high-water marks afresh (Linux: clear_refs 5), so the baseline's
    in-memory rows do not count against the project."""
    for pid in family():
        try:
            Path(f"/proc/{pid}/clear_refs").write_text("5")
        except OSError:
            continue


def peak_memory_mb() -> float:
    """Max VmHWM of this process and its descendants (the parsing workers)."""
    peaks: list[float] = []
    for pid in family():
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peaks.append(int(line.split()[1]) / 1024)
        except OSError:
            continue
    return max(peaks or [resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024])


async def baseline(database: Database, user_id: uuid.UUID, path: Path) -> float:
    started = time.perf_counter()
    async with database.session() as session:
        target = RecipientList(user_id=user_id, name="baseline", kind=ListKind.recipients)
        session.add(target)
        await session.flush()
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            next(reader)
            values = [
                {
                    "id": uuid.uuid4(),
                    "list_id": target.id,
                    "user_id": user_id,
                    "position": n,
                    "email": r[0],
                    "first_name": r[1],
                    "last_name": r[2],
                    "company": r[3],
                    "title": r[4],
                    "custom_fields": {"notes": r[5]},
                    "source": "upload",
                    "verification_status": "unverified",
                    "verification_reasons": [],
                }
                for n, r in enumerate(reader, start=2)
            ]
        await session.execute(insert(Recipient.__table__), values)  # type: ignore[arg-type]
    return time.perf_counter() - started


async def project(
    database: Database, storage: LocalStorage, user_id: uuid.UUID, data: bytes, name: str
) -> tuple[float, RecipientList]:
    started = time.perf_counter()
    async with database.sessionmaker() as session:
        upload = UploadFile(file=io.BytesIO(data), filename=name)
        created = await import_service.start_upload(
            session,
            storage=storage,
            user_id=user_id,
            kind=ListKind.recipients,
            file=upload,
            name=name,
            column_mapping=None,
        )
        await session.commit()  # the job is run directly below, not through a broker
    await import_service.process_upload(database, list_id=created.id)
    elapsed = time.perf_counter() - started
    async with database.session() as session:
        done = await session.get(RecipientList, created.id)
        assert done is not None
    return elapsed, done


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    add_database_options(parser)
    args = parser.parse_args()
    async with fresh_database("import", postgres=args.postgres) as url:
        return await run(args, url)


async def run(args: argparse.Namespace, url: str) -> int:
    folder = Path(tempfile.mkdtemp(prefix="outreach-bench-import-"))
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        env=Environment.testing,
        database_url=url,
        storage_path=folder / "storage",
        recipient_import_max_rows=max(args.rows, 100_000),
    )
    use_settings(settings)
    await asyncio.to_thread(upgrade, url)
    database = Database(create_engine(url))
    pool = ParsingPool.from_settings(settings)
    set_parsing_pool(pool)
    await pool.warm_up()
    storage = LocalStorage(settings.storage_path)
    table = rows(args.rows)
    csv_path = folder / "list.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([HEADER, *table])
    xlsx_data = make_xlsx({"Sheet1": [HEADER, *table]})
    del table
    async with database.session() as session:
        user = User(email=f"bench-{uuid.uuid4().hex[:8]}@example.com")
        session.add(user)
        await session.flush()
        user_id = user.id
    timings: dict[str, list[float]] = {"baseline": [], "csv": [], "xlsx": []}
    imported_lists: list[RecipientList] = []
    try:
        peaks: list[float] = []
        # Rounds alternate and medians are compared, as in the other benchmarks: one
        # round of each measured its neighbours on a shared machine.
        for _ in range(args.rounds):
            timings["baseline"].append(await baseline(database, user_id, csv_path))
            reset_peak_memory()  # the project's imports only, as in a one-round run
            for data, name in ((csv_path.read_bytes(), "list.csv"), (xlsx_data, "list.xlsx")):
                elapsed, imported = await project(database, storage, user_id, data, name)
                timings["csv" if name.endswith(".csv") else "xlsx"].append(elapsed)
                imported_lists.append(imported)
            peaks.append(peak_memory_mb())
            # Every round starts from the same tables: a table that grew by 300,000 rows
            # a round made each round slower than the one before (not timed).
            async with database.session() as session:
                await session.execute(delete(Recipient).where(Recipient.user_id == user_id))
        memory = max(peaks)
    finally:
        await pool.stop()
        await database.dispose()
    for imported in imported_lists:
        assert imported.status == "ready", imported.error
        assert imported.imported_count == args.rows, imported.imported_count
    base = statistics.median(timings["baseline"])
    csv_time, xlsx_time = statistics.median(timings["csv"]), statistics.median(timings["xlsx"])
    print(
        "rounds: "
        + "; ".join(f"{key} " + ", ".join(f"{t:.2f}s" for t in ts) for key, ts in timings.items())
    )
    csv_ratio, xlsx_ratio = csv_time / base, xlsx_time / base
    print(f"rows: {args.rows}  database: {url.split(':')[0]}")
    print(f"baseline (csv.reader + one bulk insert), median of {args.rounds}: {base:.2f}s")
    print(f"project CSV : {csv_time:.2f}s  ratio {csv_ratio:.2f}")
    print(f"project XLSX: {xlsx_time:.2f}s  ratio {xlsx_ratio:.2f}")
    print(f"peak memory (API process or any parsing worker): {memory:.0f} MB")
    database = database_label(url)
    rows_label = f"{args.rows:,} rows"
    return exit_code(
        report(
            "recipient_import",
            f"CSV import of {rows_label} vs csv.reader + bulk insert",
            ours=csv_time,
            baseline=base,
            unit="s",
            target=Target("<=", 3),
            database=database,
        ),
        report(
            "recipient_import",
            f"XLSX import of {rows_label} vs the same CSV baseline",
            ours=xlsx_time,
            baseline=base,
            unit="s",
            target=Target("<=", 3),
            database=database,
        ),
        report(
            "recipient_import",
            "peak memory, API process or any parsing worker",
            ours=memory,
            unit="MB",
            target=Target("<", 300, on="ours"),
            database=database,
        ),
    )


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
