"""Reading uploaded CSV and XLSX files. Every function here runs in the parsing
pool (kit.parsing_pool): module-level, plain arguments and results, so a
hostile file can be stopped by killing its worker.

CSV is read in chunks from a byte offset, so memory does not grow with the
file and an interrupted import resumes where it stopped. Each physical line is
decoded on its own (UTF-8, else Windows-1252, else Latin-1), so a file that
mixes encodings loses no row. XLSX is converted to a UTF-8 CSV first (calamine
loads a whole sheet; the zip is checked against a decompressed-size cap before
it is opened) and then read like any CSV.
"""

from __future__ import annotations

import csv
import datetime as dt
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from outreach.recipient.cells import clean_header

SAMPLE_BYTES = 64 * 1024
DELIMITERS = ",;\t|"
BOM = b"\xef\xbb\xbf"


class UnreadableFile(ValueError):
    """The file cannot be imported as a whole; the message is shown to the user."""


@dataclass
class CsvLayout:
    delimiter: str
    headers: list[str]
    data_offset: int  # byte offset of the first record after the header


@dataclass
class CsvChunk:
    rows: list[tuple[int, list[str]]] = field(default_factory=list)  # (row number, cells)
    # (row number, column index or None, reason, value)
    errors: list[tuple[int, int | None, str, str | None]] = field(default_factory=list)
    next_offset: int = 0
    first_row: int = 2
    records: int = 0  # records consumed, blank ones included
    done: bool = False


@dataclass
class XlsxInfo:
    sheet: str
    sheet_names: list[str]
    rows: int


def decode_line(raw: bytes) -> str:
    """One line as text: UTF-8 if it is, else Windows-1252, else Latin-1 (never fails)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("cp1252")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def sniff_file_format(sample: bytes) -> str:
    """``xlsx`` or ``csv`` from the first bytes; raises UnreadableFile for anything else."""
    if not sample.strip():
        raise UnreadableFile("the file is empty")
    if sample.startswith(b"PK\x03\x04"):
        return "xlsx"
    if sample.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise UnreadableFile("the file is UTF-16 text; save it as CSV UTF-8 and upload again")
    # A NUL or other control byte inside a cell is a row error (recipient.cells), not a
    # reason to refuse the file; many of them (UTF-16 without a BOM, binary) are.
    if sample.startswith((b"%PDF", b"\xd0\xcf\x11\xe0")):
        raise UnreadableFile("the file is not a CSV or XLSX file")
    controls = sum(1 for byte in sample if byte < 32 and byte not in (9, 10, 13))
    if controls > len(sample) // 100:
        raise UnreadableFile("the file is not a CSV or XLSX file (it looks binary)")
    return "csv"


class _LineSource:
    """Decoded lines for csv.reader, tracking the byte offset and the current record's raw text."""

    def __init__(self, handle: IO[bytes], offset: int) -> None:
        self.handle = handle
        self.offset = offset
        self.record_text: list[str] = []

    def __iter__(self) -> Iterator[str]:
        self.handle.seek(self.offset)
        while raw := self.handle.readline():
            if self.offset == 0 and raw.startswith(BOM):
                raw = raw[len(BOM) :]
                self.offset += len(BOM)
            self.offset += len(raw)
            line = decode_line(raw)
            self.record_text.append(line)
            yield line


def _sniff_delimiter(sample: str) -> str:
    try:
        return csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
    except csv.Error:
        first = sample.splitlines()[0] if sample else ""
        counts = {d: first.count(d) for d in DELIMITERS}
        best = max(counts, key=lambda d: counts[d])
        return best if counts[best] else ","


def inspect_csv(path: str, *, max_cell: int) -> CsvLayout:
    """Delimiter, header row and where the data starts; refuses empty and header-only files."""
    with open(path, "rb") as handle:
        sample_bytes = handle.read(SAMPLE_BYTES)
    sniff_file_format(sample_bytes)
    sample = "\n".join(decode_line(line) for line in sample_bytes.removeprefix(BOM).splitlines())
    delimiter = _sniff_delimiter(sample[: SAMPLE_BYTES // 2])
    csv.field_size_limit(max_cell)
    with open(path, "rb") as handle:
        source = _LineSource(handle, 0)
        reader = csv.reader(source, delimiter=delimiter)
        headers: list[str] | None = None
        try:
            for cells in reader:
                if any(cell.strip() for cell in cells):
                    headers = [clean_header(cell) for cell in cells]
                    break
        except csv.Error as exc:
            raise UnreadableFile(f"the header row cannot be read: {exc}") from exc
        if headers is None:
            raise UnreadableFile("the file is empty")
        data_offset = source.offset
        if not _has_data(reader):
            raise UnreadableFile("the file has a header row but no data rows")
    return CsvLayout(delimiter=delimiter, headers=_unique_headers(headers), data_offset=data_offset)


def _has_data(reader: Iterator[list[str]]) -> bool:
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return False
        except csv.Error:
            return True  # a bad row is still a row: reported per row by the import
        if any(cell.strip() for cell in cells):
            return True


def _unique_headers(headers: list[str]) -> list[str]:
    """Blank headers become ``column_N`` and repeats get a suffix, so every column has a name."""
    seen: dict[str, int] = {}
    result = []
    for index, header in enumerate(headers, start=1):
        name = header or f"column_{index}"
        if name.lower() in seen:
            seen[name.lower()] += 1
            name = f"{name}_{seen[name.lower()]}"
        seen.setdefault(name.lower(), 1)
        result.append(name)
    return result


def read_csv_chunk(
    path: str, *, delimiter: str, offset: int, first_row: int, max_records: int, max_cell: int
) -> CsvChunk:
    """Up to ``max_records`` records from ``offset``; row numbers start at ``first_row``.

    Blank records are consumed but not returned. A record with a cell over
    ``max_cell`` characters is an error naming the row and, when it can be
    told, the column; reading goes on with the next record.
    """
    csv.field_size_limit(max_cell)
    chunk = CsvChunk(next_offset=offset, first_row=first_row)
    row = first_row
    with open(path, "rb") as handle:
        source = _LineSource(handle, offset)
        reader = csv.reader(source, delimiter=delimiter)
        while chunk.records < max_records:
            source.record_text = []
            try:
                cells = next(reader)
            except StopIteration:
                chunk.done = True
                break
            except csv.Error as exc:
                column = _oversized_column("".join(source.record_text), delimiter, max_cell)
                chunk.errors.append((row, column, f"unreadable row: {exc}", None))
            else:
                if any(cell.strip() for cell in cells):
                    chunk.rows.append((row, cells))
            chunk.records += 1
            chunk.next_offset = source.offset
            row += 1
    return chunk


def _oversized_column(text: str, delimiter: str, max_cell: int) -> int | None:
    for index, part in enumerate(text.split(delimiter)):
        if len(part) > max_cell:
            return index
    return None


def count_csv_records(path: str, *, delimiter: str, offset: int, max_cell: int) -> int:
    """How many non-blank records follow ``offset`` (unreadable ones included)."""
    csv.field_size_limit(max_cell)
    count = 0
    with open(path, "rb") as handle:
        reader = csv.reader(_LineSource(handle, offset), delimiter=delimiter)
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return count
            except csv.Error:
                count += 1
                continue
            if any(cell.strip() for cell in cells):
                count += 1


def check_xlsx_archive(path: str, *, max_uncompressed: int) -> None:
    """Refuse a zip that is not a workbook or inflates past ``max_uncompressed`` bytes.

    The sizes in the zip's directory can lie, so every member is inflated
    (and thrown away) while counting; reading stops at the cap.
    """
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise UnreadableFile("the file is not a valid XLSX workbook") from exc
    with archive:
        names = archive.namelist()
        if "xl/workbook.xml" not in names:
            raise UnreadableFile("the file is a zip archive but not an XLSX workbook")
        if len(names) > 10_000:
            raise UnreadableFile("the workbook has too many parts")
        total = 0
        for info in archive.infolist():
            try:
                with archive.open(info) as member:
                    while block := member.read(1024 * 1024):
                        total += len(block)
                        if total > max_uncompressed:
                            raise UnreadableFile(
                                f"the workbook expands to more than {max_uncompressed} bytes"
                            )
            except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError) as exc:
                raise UnreadableFile("the XLSX workbook is damaged") from exc


def _cell_text(value: Any) -> str:
    if type(value) is str:  # most cells; checked first, as a sheet has 600,000 of them
        return value
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    return str(value)


def xlsx_to_csv(
    path: str, out_path: str, *, sheet: str | None, max_rows: int, max_uncompressed: int
) -> XlsxInfo:
    """Write ``sheet`` (default: the first) of the workbook as a UTF-8 CSV.

    At most ``max_rows`` rows are written (the caller passes its row limit
    plus the header and one more, so it can tell the limit was passed).
    """
    from python_calamine import CalamineError, CalamineWorkbook

    check_xlsx_archive(path, max_uncompressed=max_uncompressed)
    try:
        workbook = CalamineWorkbook.from_path(path)
        names = list(workbook.sheet_names)
        if not names:
            raise UnreadableFile("the workbook has no sheets")
        name = sheet or names[0]
        if name not in names:
            raise UnreadableFile(f"the workbook has no sheet {name!r}; its sheets: {names}")
        rows = workbook.get_sheet_by_name(name).iter_rows()
        written = 0
        with open(out_path, "w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out)
            for values in rows:
                if written >= max_rows:
                    break
                writer.writerow([_cell_text(value) for value in values])
                written += 1
    except CalamineError as exc:
        raise UnreadableFile(f"the XLSX workbook cannot be read: {exc}") from exc
    except (ValueError, OSError) as exc:
        if isinstance(exc, UnreadableFile):
            raise
        raise UnreadableFile(f"the XLSX workbook cannot be read: {exc}") from exc
    return XlsxInfo(sheet=name, sheet_names=names, rows=written)
