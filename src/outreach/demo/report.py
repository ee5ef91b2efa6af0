"""The demo's closing summary: counts, credits, where the emails are."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.table import Table
from rich.text import Text

from outreach.demo import samples


@dataclass
class DemoResult:
    """What the demo did, for the summary (and the tests)."""

    data_dir: Path
    database: str
    outbox: Path
    eml_files: list[Path]
    credits_before: int
    credits_after: int
    ledger: list[tuple[str, int]]  # (reason, delta), oldest first
    email_counts: dict[str, int]
    list_counts: dict[str, int]
    import_errors: list[str]
    verification: dict[str, Any]
    resume: dict[str, Any]
    preview: dict[str, Any]
    scheduled: int
    clock_from: datetime | None = None
    clock_to: datetime | None = None
    send_ticks: int = 0
    replied: str = ""  # marked replied by hand: their follow-up was cancelled
    followups: int = 0  # follow-ups the sequence job scheduled
    dns_queries: int = 0
    seconds: float = 0.0


def _local(moment: datetime | None) -> str:
    if moment is None:
        return "-"
    return moment.astimezone(ZoneInfo(samples.SENDER_TIMEZONE)).strftime("%a %d %b %H:%M %Z")


def _shown(path: Path) -> str:
    """Relative to the working directory when inside it (shorter), else absolute."""
    try:
        return os.path.relpath(path) if path.resolve().is_relative_to(Path.cwd()) else str(path)
    except ValueError:
        return str(path)


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {name}" for name, n in counts.items() if n) or "none"


def _ledger(entries: list[tuple[str, int]]) -> str:
    by_reason: Counter[str] = Counter()
    for reason, delta in entries:
        by_reason[reason] += delta
    return ", ".join(f"{reason} {delta:+d}" for reason, delta in by_reason.items())


def summary_rows(result: DemoResult) -> list[tuple[str, str]]:
    resume, preview, verification = result.resume, result.preview, result.verification
    score = "not scored" if resume["score"] is None else f"{resume['score']}/100"
    refunded = verification.get("credits_refunded") or 0
    rows = [
        (
            "resume",
            f"{resume['file']}: ATS score {score} ({resume['grade'] or 'red flags'}), "
            f"rubric {resume['rubric_version']}, written by the {resume['writer']} writer",
        ),
        (
            "list",
            f"{len(samples.CONTACTS)} rows: {_counts(result.list_counts)}",
        ),
        *(("", error) for error in result.import_errors),
        (
            "verification",
            f"{verification['total']} checked, {verification['credits_charged']} credits"
            + (f" ({refunded} refunded)" if refunded else "")
            + f": {_counts(verification['counts'])}; {result.dns_queries} DNS queries answered "
            "by the demo's responder",
        ),
        *(("", f"{line}, now suppressed") for line in verification.get("flagged", [])),
        (
            "preview",
            f"{preview['to_send']} to send, skipped {_counts(preview['skipped'])}, "
            f"cost {preview['credit_cost']} credits",
        ),
        (
            "clock",
            f"moved from {_local(result.clock_from)} to {_local(result.clock_to)} "
            f"({result.send_ticks} send ticks)",
        ),
        ("emails", f"{result.scheduled} scheduled: {_counts(result.email_counts)}"),
        (
            "follow-ups",
            f"{result.followups} sent in their threads; {result.replied} replied (marked by "
            "hand: an outbox cannot read replies), so theirs was cancelled and refunded",
        ),
        (
            "credits",
            f"{result.credits_before} before, {result.credits_after} after "
            f"({_ledger(result.ledger)})",
        ),
        ("outbox", f"{len(result.eml_files)} .eml files in {_shown(result.outbox)}"),
    ]
    return rows


def print_summary(console: Console, result: DemoResult) -> None:
    where = (
        f"a fresh SQLite database in {_shown(result.data_dir)}"
        if result.database == "sqlite"
        else "the database given with --database-url"
    )
    console.print()
    console.print(
        f"[bold green]Demo finished in {result.seconds:.1f} s[/] on {where}; "
        "your own database was not touched and nothing left this machine."
    )
    table = Table(show_header=False, box=None, padding=(0, 2, 0, 0))
    table.add_column(style="bold")
    table.add_column()
    for name, text in summary_rows(result):
        table.add_row(name, Text(text))
    console.print(table)
    if result.eml_files:
        console.print(Text(f"Open one in a mail client: {_shown(result.eml_files[0])}"))
    console.print(
        f"Run it again with `outreach demo` (the folder {_shown(result.data_dir)} is emptied "
        "first); start the API with `make run` and sign in at /docs to try it yourself."
    )
