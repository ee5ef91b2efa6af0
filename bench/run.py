"""Run every benchmark, print one table of their targets, write bench/results/latest.json.

Each ``bench/*.py`` (except this runner and the ``_``-prefixed helpers) runs in
its own process, one after another, so a missed target or a crash in one never
stops the others. A script reports its rows through ``_common.report``, which
appends them to the file this runner names in ``OUTREACH_BENCH_RESULTS``. A script
that exits non-zero without reporting a missed target counts as an error row.

Exit status: 0 when every target that ran was met; 1 when any was missed or a
benchmark failed to run. Targets not run (no PostgreSQL) are listed, not failed.

    uv run python bench/run.py                  # all of them (make bench)
    uv run python bench/run.py credits_debit    # some of them, by name
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _common import DATABASE_ENV, REDIS_ENV, RESULTS_ENV, format_figure

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "latest.json"
VERDICTS = {"PASS": "met", "FAIL": "MISSED", "SKIP": "not run", "ERROR": "ERROR"}
COLUMNS = ("benchmark", "measure", "db", "ours", "baseline", "ratio", "target", "result")


def discover(names: list[str]) -> list[Path]:
    scripts = sorted(
        path
        for path in HERE.glob("*.py")
        if not path.name.startswith("_") and path.name != "run.py"
    )
    if not names:
        return scripts
    known = {path.stem: path for path in scripts}
    unknown = [name for name in names if name.removesuffix(".py") not in known]
    if unknown:
        raise SystemExit(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(known)}")
    return [known[name.removesuffix(".py")] for name in names]


def run_script(script: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Run one benchmark with its output on the terminal; its rows and how it ended."""
    print(f"\n== {script.name}", flush=True)
    with tempfile.NamedTemporaryFile(prefix="bench-rows-", suffix=".jsonl", delete=False) as rows:
        rows_path = Path(rows.name)
    started = time.perf_counter()
    try:
        completed = subprocess.run(
            [sys.executable, str(script)],
            env={**os.environ, RESULTS_ENV: str(rows_path)},
            cwd=HERE.parent,
            check=False,  # a missed target exits 1; the others still run
        )
        reported = [json.loads(line) for line in rows_path.read_text().splitlines() if line]
    finally:
        rows_path.unlink(missing_ok=True)
    seconds = time.perf_counter() - started
    run = {"script": script.name, "exit_code": completed.returncode, "seconds": round(seconds, 1)}
    missed = any(row["status"] == "FAIL" for row in reported)
    if completed.returncode != 0 and not missed:
        reported.append(
            {
                "benchmark": script.stem,
                "measure": "(the script failed before reporting every target)",
                "database": "-",
                "unit": "",
                "ours": None,
                "baseline": None,
                "ratio": None,
                "target": "-",
                "status": "ERROR",
                "note": f"exit status {completed.returncode}; see its output above",
            }
        )
    return reported, run


def cells(row: dict[str, Any]) -> tuple[str, ...]:
    return (
        row["benchmark"],
        row["measure"],
        row["database"],
        format_figure(row["ours"], row["unit"]),
        format_figure(row["baseline"], row["unit"]),
        "-" if row["ratio"] is None else f"{row['ratio']:.2f}",
        row["target"],
        VERDICTS[row["status"]],
    )


def print_table(rows: list[dict[str, Any]]) -> None:
    table = [COLUMNS, *(cells(row) for row in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    rule = "-+-".join("-" * width for width in widths)
    print()
    for number, line in enumerate(table):
        cells_line = " | ".join(c.ljust(w) for c, w in zip(line, widths, strict=True))
        print(cells_line.rstrip())
        if number == 0:
            print(rule)
    for row in rows:
        if row["note"] and row["status"] != "SKIP":  # not-run reasons are in the summary
            print(f"  {row['benchmark']}: {row['note']}")


def tally(rows: list[dict[str, Any]]) -> dict[str, int]:
    return {status: sum(row["status"] == status for row in rows) for status in VERDICTS}


def summary(rows: list[dict[str, Any]]) -> tuple[str, bool]:
    counts = tally(rows)
    missed = [f"{r['benchmark']} ({r['measure']})" for r in rows if r["status"] == "FAIL"]
    errors = [r["benchmark"] for r in rows if r["status"] == "ERROR"]
    not_run = [f"{r['benchmark']} ({r['note']})" for r in rows if r["status"] == "SKIP"]
    ran = counts["PASS"] + counts["FAIL"]
    lines = [f"{counts['PASS']} of {ran} targets met."]
    if missed:
        lines.append("MISSED: " + "; ".join(missed) + ".")
    if errors:
        lines.append("ERROR (did not finish): " + ", ".join(errors) + ".")
    if not_run:
        lines.append("Not run: " + "; ".join(not_run) + ".")
    if not (missed or errors):
        lines.append("Every target that ran was met.")
    return "\n".join(lines), not (missed or errors)


def write_json(rows: list[dict[str, Any]], runs: list[dict[str, Any]], started: datetime) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "started_at": started.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "services": {
            "database": "postgresql" if os.environ.get(DATABASE_ENV) else "sqlite",
            "redis": bool(os.environ.get(REDIS_ENV)),
        },
        # ok: every target that ran was met (the exit status of make bench)
        "ok": not any(row["status"] in ("FAIL", "ERROR") for row in rows),
        "counts": {VERDICTS[status]: n for status, n in tally(rows).items()},
        "runs": runs,
        "results": rows,
    }
    RESULTS.write_text(json.dumps(document, indent=2) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    scripts = discover(parser.parse_args().names)
    started = datetime.now(UTC)
    services = "PostgreSQL" if os.environ.get(DATABASE_ENV) else "SQLite"
    print(
        f"{len(scripts)} benchmarks on {services}"
        + (" + Redis" if os.environ.get(REDIS_ENV) else "")
    )
    rows: list[dict[str, Any]] = []
    runs: list[dict[str, Any]] = []
    for script in scripts:
        reported, run = run_script(script)
        rows += reported
        runs.append(run)
    print_table(rows)
    text, ok = summary(rows)
    print()
    print(text)
    write_json(rows, runs, started)
    print(f"written to {RESULTS.relative_to(HERE.parent)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
