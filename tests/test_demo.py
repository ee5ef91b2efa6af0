"""`outreach demo`: the whole flow on a throw-away database, checked from the outside:
the command's output, the .eml files it wrote and the database it left behind."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import subprocess
from collections.abc import Iterator
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from outreach.cli import app
from outreach.config import Settings, use_settings
from outreach.demo import samples
from outreach.kit.clock import clock
from tests.conftest import TEST_DATABASE_URL, _create_postgres_database
from tests.mailbox.wire import check_raw_lines, raw_header_values

ROOT = Path(__file__).resolve().parents[1]
GOOD = sorted(contact.email for contact in samples.GOOD)


@pytest.fixture
def restore_settings(settings: Settings) -> Iterator[None]:
    """The demo makes its own settings the process's; put the test settings back."""
    yield
    use_settings(settings)
    clock.unfreeze()


def run_demo_command(*args: str) -> str:
    # Wide enough that rich does not wrap the lines the test reads.
    result = CliRunner().invoke(app, ["demo", *args], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.output


REPLIED = samples.GOOD[0].email  # marked replied by hand: no follow-up


def check_outbox(output: str, data_dir: Path) -> None:
    files = sorted(data_dir.glob("outbox/*/*.eml"))
    assert len(files) == len(GOOD) + len(GOOD) - 1 == 11
    for path in files:  # as written: the link itself, never RFC 2047 encoded words
        raw_bytes = path.read_bytes()
        (links,) = raw_header_values(raw_bytes, "List-Unsubscribe")
        assert re.fullmatch(r"<http://[^>\s]+/u/[^>\s]+>", links), links
        check_raw_lines(raw_bytes)
    raw = [BytesParser(policy=policy.strict).parsebytes(p.read_bytes()) for p in files]
    firsts = {m["To"].addresses[0].addr_spec: m for m in raw if "In-Reply-To" not in m}
    followups = {m["To"].addresses[0].addr_spec: m for m in raw if "In-Reply-To" in m}
    assert sorted(firsts) == GOOD
    assert sorted(followups) == sorted(set(GOOD) - {REPLIED})
    for message in raw:
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        attachments = [part.get_filename() for part in message.iter_attachments()]
        assert attachments == ["asha-rao-resume.docx"]
    for address, first in firsts.items():
        first_name = first["To"].addresses[0].display_name
        assert first["Subject"].startswith(f"{first_name}, data engineering at ")
        if address in followups:  # answers the first email, in its thread
            followup = followups[address]
            assert followup["Subject"] == "Re: " + first["Subject"]
            assert followup["In-Reply-To"] == first["Message-ID"]
            assert followup["References"] == first["Message-ID"]
            assert "bringing my note below back" in followup.get_body(("plain",)).get_content()
    assert f"{len(files)} .eml files in" in output
    assert "20 before, 1 after" in output
    assert f"Marked {REPLIED} as replied by hand" in output
    assert "cannot read replies" in output
    assert "5 follow-ups" in output
    assert "row 5: " in output
    assert samples.BAD_SYNTAX.email in output


def test_demo_runs_the_main_job_end_to_end(restore_settings: None, tmp_path: Path) -> None:
    data_dir = tmp_path / "demo"
    output = run_demo_command("--data-dir", str(data_dir))
    check_outbox(output, data_dir)

    database = sqlite3.connect(data_dir / "outreach.db")
    statuses = database.execute("SELECT status, count(*) FROM scheduled_emails GROUP BY status")
    assert dict(statuses.fetchall()) == {"sent": 11, "cancelled": 1}
    ledger = database.execute("SELECT reason, delta FROM ledger_entries ORDER BY created_at")
    assert ledger.fetchall() == [
        ("signup_grant", 20),
        ("verify", -8),
        ("campaign_schedule", -12),  # 6 first emails and 6 follow-ups
        ("campaign_refund", 1),  # the follow-up of the recipient who replied
    ]
    (balance,) = database.execute("SELECT balance FROM credit_accounts").fetchone()
    assert balance == 1
    events = database.execute("SELECT recipient_address, kind, source FROM email_events")
    assert events.fetchall() == [(REPLIED, "replied", "manual")]
    suppressed = {row[0] for row in database.execute("SELECT value FROM suppressions")}
    assert suppressed == {
        samples.SUPPRESSED.email,  # put there by hand before the import
        samples.NO_MX.email,  # verification: the domain takes no mail
        samples.DISPOSABLE.email,  # verification: a disposable domain
    }
    verdicts = dict(database.execute("SELECT email, verification_status FROM recipients"))
    assert verdicts == {
        **dict.fromkeys(GOOD, "deliverable"),
        samples.NO_MX.email: "undeliverable",
        samples.DISPOSABLE.email: "risky",
    }
    database.close()

    # A second run starts from an empty folder, not on top of the first.
    again = run_demo_command("--data-dir", str(data_dir))
    assert len(list(data_dir.glob("outbox/*/*.eml"))) == 11
    assert "20 before, 1 after" in again


def test_demo_never_empties_a_folder_it_did_not_make(tmp_path: Path) -> None:
    keep = tmp_path / "notes.txt"
    keep.write_text("mine")
    result = CliRunner().invoke(app, ["demo", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "was not made by the demo" in result.output
    assert keep.read_text() == "mine"


@pytest.mark.skipif(not TEST_DATABASE_URL, reason="runs on PostgreSQL when CI provides it")
def test_demo_on_an_empty_postgresql_database(restore_settings: None, tmp_path: Path) -> None:
    assert TEST_DATABASE_URL is not None
    name = f"{make_url(TEST_DATABASE_URL).database}_demo"
    url = asyncio.run(_create_postgres_database(TEST_DATABASE_URL, name))
    data_dir = tmp_path / "demo"
    output = run_demo_command("--data-dir", str(data_dir), "--database-url", url)
    check_outbox(output, data_dir)
    assert "the database given with --database-url" in output

    refused = CliRunner().invoke(app, ["demo", "--data-dir", str(data_dir), "--database-url", url])
    assert refused.exit_code == 1
    assert "needs an empty database" in refused.output


def test_make_demo_sets_up_like_make_run_then_runs_the_demo() -> None:
    # --no-print-directory: under CI this runs inside `make test`, where a nested
    # make would otherwise add "Entering/Leaving directory" lines.
    planned = subprocess.run(
        ["make", "--no-print-directory", "-n", "demo"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "sync --frozen" in planned
    assert planned.strip().splitlines()[-1].endswith("run outreach demo")
