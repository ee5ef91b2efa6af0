"""Resume upload-to-parsed time versus bare pypdf/python-docx extraction, same files, same run.

* **ours**: what an upload does to get a parse: the bytes go to the pre-started
  parsing pool (``outreach.kit.parsing_pool``, one process hop each way), which
  checks and extracts them (``outreach.resume.extraction.extract_document``: type by
  content, zip directory checks, tables, headers/footers, layout facts), then the
  text is structured in the API process (``outreach.resume.parsing.parse_resume``:
  sections, contact, skills, years);
* **bare**: the same files read in this process with no isolation and no checks:
  ``PdfReader(...).pages[i].extract_text()`` and ``docx.Document(...)`` paragraphs
  plus table cells.

Files: generated resumes (a one-column PDF, a two-column PDF, a DOCX with a skills
table), each padded to two pages, as in ``tests/resume/documents.py``. Each round
parses every file ``--repeat`` times one after another (latency, not throughput:
the pool's second worker does not help ours). Rounds alternate bare and ours after
a warm-up; medians are compared. Target: ours / bare <= 1.5 (time). Prints PASS or
FAIL and exits 1 on FAIL.

    uv run python bench/resume_parse.py [--rounds 5] [--repeat 20]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import docx
from _common import Target, exit_code, report
from pypdf import PdfReader
from tests.resume import documents

from outreach.kit.parsing_pool import ParsingPool
from outreach.resume.extraction import extract_document
from outreach.resume.parsing import parse_resume

TARGET = 1.5


def corpus() -> list[bytes]:
    two_pages = documents.resume_lines() * 2
    return [documents.pdf_resume(two_pages), documents.two_column_pdf(), documents.docx_resume()]


def bare(data: bytes) -> str:
    if data.startswith(b"%PDF"):
        return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)
    document = docx.Document(io.BytesIO(data))
    lines = [p.text for p in document.paragraphs]
    for table in document.tables:
        lines.extend(cell.text for row in table.rows for cell in row.cells)
    return "\n".join(lines)


async def ours(pool: ParsingPool, data: bytes) -> str:
    extracted = await pool.run(extract_document, data)
    parse_resume(
        extracted["text"],
        header_footer_text=extracted["header_footer_text"],
        today=date(2026, 11, 25),
    )
    return str(extracted["text"])


async def timed_ours(pool: ParsingPool, files: list[bytes], repeat: int) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        for data in files:
            await ours(pool, data)
    return time.perf_counter() - start


def timed_bare(files: list[bytes], repeat: int) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        for data in files:
            bare(data)
    return time.perf_counter() - start


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    files = corpus()
    pool = ParsingPool(workers=2)
    pool.start()
    await pool.warm_up()
    try:
        await timed_ours(pool, files, 2)  # warm-up: both workers, caches
        timed_bare(files, 2)
        bare_times, our_times = [], []
        for _ in range(args.rounds):
            bare_times.append(timed_bare(files, args.repeat))
            our_times.append(await timed_ours(pool, files, args.repeat))
    finally:
        await pool.stop()
    n = args.repeat * len(files)
    bare_ms = statistics.median(bare_times) / n * 1000
    our_ms = statistics.median(our_times) / n * 1000
    print(f"files: {len(files)} (pdf, two-column pdf, docx), {n} parses per round")
    print(f"bare pypdf/python-docx: {bare_ms:.2f} ms per file (median of {args.rounds})")
    print(f"ours (pool + checks + structure): {our_ms:.2f} ms per file")
    met = report(
        "resume_parse",
        "resume upload-to-parsed vs bare pypdf/python-docx",
        ours=our_ms,
        baseline=bare_ms,
        unit="ms/file",
        target=Target("<=", TARGET),
    )
    return exit_code(met)


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
