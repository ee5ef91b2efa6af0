"""Importing CSV/XLSX files into recipient lists, suppressions or the directory.

The request stores the file, checks what can be checked cheaply (format,
header row and email column for CSV, the workbook's sheets for XLSX) and
answers 202. The job ``recipient.process_recipient_list_upload`` then reads
the file in chunks in the parsing pool, maps and normalises each row, drops
in-file duplicates, records per-row errors and inserts each chunk in one
statement, committing progress per chunk so a retried job resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

from fastapi import UploadFile
from sqlalchemy import Table, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.config import get_settings
from outreach.kit.audit import record_audit
from outreach.kit.clock import utcnow
from outreach.kit.db import Database, dialect_insert, new_row_ids
from outreach.kit.errors import FieldError, PayloadTooLarge, Unprocessable
from outreach.kit.jobs import enqueue_after_commit
from outreach.kit.logging import get_logger
from outreach.kit.parsing_pool import (
    ParsingPool,
    ParsingPoolError,
    get_parsing_pool,
    set_parsing_pool,
)
from outreach.kit.storage import Storage, create_storage
from outreach.models import (
    ListKind,
    ListStatus,
    Recipient,
    RecipientImportError,
    RecipientList,
    SuppressionReason,
)
from outreach.recipient import parsing
from outreach.recipient.addresses import InvalidAddress, normalise_domain
from outreach.recipient.cells import visible
from outreach.recipient.mapping import (
    MappedRow,
    MappingError,
    RowError,
    RowMapper,
    resolve_mapping,
    validate_overrides,
)
from outreach.recipient.suppression import SuppressionEntry, suppression_service

log = get_logger("outreach.recipient.import")
_recipients = cast(Table, Recipient.__table__)
IMPORT_JOB = "recipient.process_recipient_list_upload"


class FileTooLarge(PayloadTooLarge):
    code, title = "file_too_large", "The file is larger than the upload limit"


class UnreadableUpload(Unprocessable):
    code, title = "unreadable_file", "The file cannot be imported"


class EmailColumnMissing(Unprocessable):
    code, title = "email_column_missing", "No email column"


class InvalidColumnMapping(Unprocessable):
    code, title = "invalid_column_mapping", "Invalid column mapping"


def _problem_for(error: MappingError) -> Unprocessable:
    kind = EmailColumnMissing if "no email column" in str(error) else InvalidColumnMapping
    return kind(
        str(error),
        columns=error.columns,
        errors=[FieldError(loc=["body", "column_mapping"], message=str(error))],
    )


async def _read_upload(file: UploadFile, limit: int) -> bytes:
    data = await file.read(limit + 1)
    if len(data) > limit:
        raise FileTooLarge(f"the file is larger than {limit} bytes", limit=limit)
    return data


@contextlib.asynccontextmanager
async def _temporary_file(data: bytes | None = None, suffix: str = "") -> AsyncIterator[Path]:
    handle, name = tempfile.mkstemp(prefix="outreach-import-", suffix=suffix)
    os.close(handle)
    path = Path(name)
    try:
        if data is not None:
            await asyncio.to_thread(path.write_bytes, data)
        yield path
    finally:
        await asyncio.to_thread(path.unlink, missing_ok=True)


def parsing_pool() -> ParsingPool:
    """The process's parsing pool; a worker process without one starts it on first use."""
    try:
        return get_parsing_pool()
    except RuntimeError:
        pool = ParsingPool.from_settings(get_settings())
        set_parsing_pool(pool)
        return pool


class ImportService:
    async def start_upload(
        self,
        session: AsyncSession,
        *,
        storage: Storage,
        user_id: uuid.UUID,
        kind: ListKind,
        file: UploadFile,
        name: str | None,
        column_mapping: str | None,
        sheet: str | None = None,
        options: dict[str, Any] | None = None,
    ) -> RecipientList:
        """Check and store an uploaded file and queue its import (the 202 of the upload)."""
        settings = get_settings()
        overrides = self._parse_overrides(column_mapping)
        data = await _read_upload(file, settings.recipient_upload_max_bytes)
        try:
            file_format = parsing.sniff_file_format(data[: parsing.SAMPLE_BYTES])
        except parsing.UnreadableFile as exc:
            raise UnreadableUpload(str(exc)) from exc
        headers, delimiter = await self._check_file(data, file_format, kind, overrides, sheet)
        file_name = (file.filename or f"upload.{file_format}")[:255]
        recipient_list = RecipientList(
            id=uuid.uuid4(),
            user_id=user_id,
            kind=kind,
            name=(name or file_name)[:200],
            status=ListStatus.queued,
            file_name=file_name,
            file_format=file_format,
            file_size=len(data),
            sheet_name=sheet,
            csv_delimiter=delimiter,
            headers=headers,
            column_mapping=resolve_mapping(headers, kind, overrides) if headers else {},
            mapping_overrides=overrides,
            options=options or {},
        )
        recipient_list.file_key = f"imports/{user_id}/{recipient_list.id}.{file_format}"
        await storage.put(recipient_list.file_key, data)
        session.add(recipient_list)
        await session.flush()
        if kind == ListKind.directory:
            await record_audit(
                session,
                action="recipient.directory_import",
                actor_id=user_id,
                target_type="recipient_list",
                target_id=recipient_list.id,
                details={"file_name": file_name, "bytes": len(data)},
            )
        enqueue_after_commit(session, IMPORT_JOB, list_id=str(recipient_list.id))
        return recipient_list

    def _parse_overrides(self, column_mapping: str | None) -> dict[str, Any]:
        if not column_mapping:
            return {}
        try:
            return validate_overrides(json.loads(column_mapping))
        except ValueError as exc:
            message = str(exc) if "column_mapping" in str(exc) else "column_mapping is not JSON"
            raise InvalidColumnMapping(
                message, errors=[FieldError(loc=["body", "column_mapping"], message=message)]
            ) from exc

    async def _check_file(
        self,
        data: bytes,
        file_format: str,
        kind: ListKind,
        overrides: dict[str, Any],
        sheet: str | None,
    ) -> tuple[list[str], str | None]:
        """CSV: header and email column now (422 otherwise). XLSX: only the archive's
        declared shape; its rows are read by the job (calamine loads whole sheets)."""
        settings = get_settings()
        pool = parsing_pool()
        if file_format == "xlsx":
            if sheet is not None and not sheet.strip():
                raise UnreadableUpload("sheet must not be blank")
            return [], None
        async with _temporary_file(data, ".csv") as path:
            try:
                layout = await pool.run(
                    parsing.inspect_csv, str(path), max_cell=settings.recipient_max_cell_bytes
                )
            except (parsing.UnreadableFile, ParsingPoolError) as exc:
                raise UnreadableUpload(str(exc)) from exc
        try:
            resolve_mapping(layout.headers, kind, overrides)
        except MappingError as exc:
            raise _problem_for(exc) from exc
        return layout.headers, layout.delimiter

    async def add_rows_by_hand(
        self, session: AsyncSession, *, recipient_list: RecipientList, rows: list[MappedRow]
    ) -> tuple[int, int, int]:
        """Insert mapped rows into a list (hand entry, directory, enrichment);
        returns (imported, duplicates, suppressed)."""
        sink = _RecipientSink(recipient_list)
        return await sink.store(session, rows)

    # The job ------------------------------------------------------------------

    async def process_upload(self, database: Database, *, list_id: uuid.UUID) -> None:
        """Import the stored file of a queued list (the body of the import job)."""
        async with database.session() as session:
            recipient_list = await session.get(RecipientList, list_id)
            if recipient_list is None or recipient_list.status in (
                ListStatus.ready,
                ListStatus.failed,
            ):
                return
            recipient_list.status = ListStatus.processing
            recipient_list.started_at = recipient_list.started_at or utcnow()
            file_key, file_format = recipient_list.file_key, recipient_list.file_format
            sheet = recipient_list.sheet_name
        assert file_key is not None
        storage = create_storage(get_settings())
        async with _temporary_file(suffix=f".{file_format}") as path:
            try:
                await _download(storage, file_key, path)
            finally:
                await storage.close()
            try:
                if file_format == "xlsx":
                    async with _temporary_file(suffix=".csv") as csv_path:
                        await self._convert_xlsx(database, list_id, path, csv_path, sheet)
                        await self._import_csv(database, list_id, csv_path)
                else:
                    await self._import_csv(database, list_id, path)
            except (parsing.UnreadableFile, ParsingPoolError, MappingError) as exc:
                await self._fail(database, list_id, exc)

    async def _convert_xlsx(
        self, database: Database, list_id: uuid.UUID, path: Path, csv_path: Path, sheet: str | None
    ) -> None:
        settings = get_settings()
        info = await parsing_pool().run(
            parsing.xlsx_to_csv,
            str(path),
            str(csv_path),
            sheet=sheet,
            max_rows=settings.recipient_import_max_rows + 2,  # header + one past the limit
            max_uncompressed=settings.recipient_xlsx_max_uncompressed_bytes,
            timeout=settings.recipient_parse_timeout_seconds,
        )
        async with database.session() as session:
            recipient_list = await session.get(RecipientList, list_id)
            if recipient_list is not None:
                recipient_list.sheet_name = info.sheet

    async def _import_csv(self, database: Database, list_id: uuid.UUID, path: Path) -> None:
        settings = get_settings()
        pool = parsing_pool()
        max_cell = settings.recipient_max_cell_bytes
        timeout = settings.recipient_parse_timeout_seconds
        layout = await pool.run(parsing.inspect_csv, str(path), max_cell=max_cell, timeout=timeout)
        async with database.session() as session:
            recipient_list = await session.get(RecipientList, list_id)
            if recipient_list is None:
                return
            mapping = resolve_mapping(
                layout.headers, recipient_list.kind, recipient_list.mapping_overrides
            )
            recipient_list.headers, recipient_list.column_mapping = layout.headers, mapping
            recipient_list.csv_delimiter = layout.delimiter
            kind = recipient_list.kind
            if recipient_list.rows_total is None:
                recipient_list.rows_total = await pool.run(
                    parsing.count_csv_records,
                    str(path),
                    delimiter=layout.delimiter,
                    offset=layout.data_offset,
                    max_cell=max_cell,
                    timeout=timeout,
                )
            offset = recipient_list.resume_offset or layout.data_offset
            next_row = recipient_list.next_position or 2
        mapper = RowMapper(layout.headers, mapping, kind)
        seen: set[str] = set()
        done = False
        while not done:
            chunk = await pool.run(
                parsing.read_csv_chunk,
                str(path),
                delimiter=layout.delimiter,
                offset=offset,
                first_row=next_row,
                max_records=settings.recipient_import_batch_rows,
                max_cell=max_cell,
                timeout=timeout,
            )
            async with database.session() as session:
                state = await self._store_chunk(session, list_id, chunk, mapper, seen, layout)
            if state is None:
                return  # the list was deleted meanwhile
            done, offset, next_row = state

    async def _store_chunk(
        self,
        session: AsyncSession,
        list_id: uuid.UUID,
        chunk: parsing.CsvChunk,
        mapper: RowMapper,
        seen: set[str],
        layout: parsing.CsvLayout,
    ) -> tuple[bool, int, int] | None:
        """Map, dedupe and store one chunk, and move the list's progress; None if deleted."""
        limit = get_settings().recipient_import_max_rows
        recipient_list = await session.scalar(
            select(RecipientList).where(RecipientList.id == list_id).with_for_update()
        )
        if recipient_list is None:
            return None
        entries: list[tuple[int, list[str] | None, RowError | None]] = [
            (row, cells, None) for row, cells in chunk.rows
        ]
        entries += [
            (row, None, RowError(row, _header(layout, column), reason, value))
            for row, column, reason, value in chunk.errors
        ]
        entries.sort(key=lambda entry: entry[0])
        room = max(0, limit - recipient_list.rows_done)
        over_limit = len(entries) > room
        entries = entries[:room]
        errors: list[RowError] = []
        taken: list[MappedRow] = []
        for row, cells, error in entries:
            mapped = error or mapper.map(row, cells or [])
            if isinstance(mapped, RowError):
                errors.append(mapped)
                continue
            key = mapped.address.email if mapped.address else f"@{mapped.fields.get('domain')}"
            if key in seen:
                recipient_list.duplicate_count += 1
                continue
            seen.add(key)
            taken.append(mapped)
        sink = _sink_for(recipient_list)
        imported, duplicates, suppressed = await sink.store(session, taken)
        errors.extend(sink.errors)
        recipient_list.imported_count += imported
        recipient_list.duplicate_count += duplicates
        recipient_list.suppressed_count += suppressed
        recipient_list.rows_done += len(entries)
        recipient_list.resume_offset = chunk.next_offset
        next_row = recipient_list.next_position = max(
            recipient_list.next_position, chunk.first_row + chunk.records
        )
        if over_limit:
            later = max((recipient_list.rows_total or 0) - limit, 1)
            errors.append(
                RowError(
                    entries[-1][0] + 1 if entries else next_row,
                    None,
                    f"the import stops at {limit} rows (OUTREACH_RECIPIENT_IMPORT_MAX_ROWS); "
                    f"{later} later rows were not imported: upload them as another file",
                    None,
                )
            )
        recipient_list.invalid_count += len(errors)
        await _insert_errors(session, list_id, errors)
        finished = chunk.done or over_limit
        if finished:
            recipient_list.status = ListStatus.ready
            recipient_list.finished_at = utcnow()
            log.info(
                "import finished", list_id=str(list_id), imported=recipient_list.imported_count
            )
        return finished, chunk.next_offset, next_row

    async def _fail(self, database: Database, list_id: uuid.UUID, error: Exception) -> None:
        message = str(error)
        if isinstance(error, MappingError):
            message = f"{error} Columns found: {', '.join(error.columns)}."
        elif isinstance(error, ParsingPoolError):
            message = f"the file could not be read in time or crashed the reader ({error})"
        async with database.session() as session:
            recipient_list = await session.get(RecipientList, list_id)
            if recipient_list is not None:
                recipient_list.status = ListStatus.failed
                recipient_list.error = message[:2000]
                recipient_list.finished_at = utcnow()
        log.info("import failed", list_id=str(list_id), error=message)


def _header(layout: parsing.CsvLayout, column: int | None) -> str | None:
    if column is None or column >= len(layout.headers):
        return None
    return layout.headers[column]


async def _download(storage: Storage, key: str, path: Path) -> None:
    handle = await asyncio.to_thread(path.open, "wb")
    try:
        async for block in storage.open(key):
            await asyncio.to_thread(handle.write, block)
    finally:
        await asyncio.to_thread(handle.close)


async def _insert_errors(session: AsyncSession, list_id: uuid.UUID, errors: list[RowError]) -> None:
    if not errors:
        return
    now = utcnow()
    await session.execute(
        insert(RecipientImportError),
        [
            {
                "id": uuid.uuid4(),
                "created_at": now,
                "list_id": list_id,
                "row": error.row,
                # visible(): a refused control character is stored as an escape.
                "column": visible(error.column)[:200] if error.column else None,
                "reason": visible(error.reason)[:500],
                "value": visible(error.value)[:200] if error.value else None,
            }
            for error in errors
        ],
    )


class _RecipientSink:
    """Stores mapped rows as recipients of a list: suppressed ones are counted, not stored."""

    def __init__(self, recipient_list: RecipientList) -> None:
        self.list = recipient_list
        self.errors: list[RowError] = []

    async def store(self, session: AsyncSession, rows: list[MappedRow]) -> tuple[int, int, int]:
        rows = [row for row in rows if row.address is not None]
        if not rows:
            return 0, 0, 0
        suppressed = await suppression_service.suppressed_among(
            session, user_id=self.list.user_id, emails=[r.address.email for r in rows if r.address]
        )
        now = utcnow()
        kept = [row for row in rows if row.address and row.address.email not in suppressed]
        ids = new_row_ids(len(kept))
        values = [_recipient_values(self.list, row, now, ids[n]) for n, row in enumerate(kept)]
        inserted = 0
        if values:
            # RETURNING a plain integer only to count the rows stored: turning 100,000
            # returned ids into UUIDs cost as much as mapping the rows.
            result = await session.execute(
                dialect_insert(session)(_recipients)
                .on_conflict_do_nothing(index_elements=["list_id", "email"])
                .returning(_recipients.c.position),
                values,
            )
            inserted = len(result.all())
        return inserted, len(values) - inserted, len(suppressed)


def _recipient_values(
    recipient_list: RecipientList, row: MappedRow, now: Any, row_id: uuid.UUID
) -> dict[str, Any]:
    assert row.address is not None
    fields = row.fields
    first, last, name = fields.get("first_name"), fields.get("last_name"), fields.get("name")
    # A part derived from another cell that does not fit its column is left empty, not cut.
    if name and not (first or last):
        first, _, rest = name.partition(" ")
        first, last = _fitting(first, 100), _fitting(rest.strip(), 100)
    if not name and (first or last):
        name = _fitting(" ".join(part for part in (first, last) if part), 200)
    return {
        "id": row_id,
        "created_at": now,
        "list_id": recipient_list.id,
        "user_id": recipient_list.user_id,
        "position": row.row,
        "email": row.address.email,
        "name": name or None,
        "first_name": first or None,
        "last_name": last or None,
        "company": fields.get("company"),
        "title": fields.get("title"),
        "linkedin": fields.get("linkedin"),
        "website": fields.get("website"),
        "timezone": fields.get("timezone"),
        "custom_fields": row.custom,
        "source": fields.get("source") or ("upload" if recipient_list.file_key else "manual"),
        "verification_status": "unverified",
        "verification_reasons": [],
    }


def _fitting(value: str, limit: int) -> str | None:
    return value if value and len(value) <= limit else None


class _SuppressionSink:
    """Stores mapped rows of a suppression CSV as the uploader's suppressions."""

    def __init__(self, recipient_list: RecipientList) -> None:
        self.list = recipient_list
        self.errors: list[RowError] = []

    async def store(self, session: AsyncSession, rows: list[MappedRow]) -> tuple[int, int, int]:
        default = self.list.options.get("reason", SuppressionReason.manual.value)
        entries = []
        for row in rows:
            reason = (row.fields.get("reason") or default).lower()
            if reason not in SuppressionReason.__members__:
                reason = default
            if row.address is not None:
                entries.append(SuppressionEntry("email", row.address.email, reason))
                continue
            try:
                domain = normalise_domain(row.fields.get("domain") or "")
            except InvalidAddress as exc:
                self.errors.append(RowError(row.row, None, str(exc), row.fields.get("domain")))
                continue
            entries.append(SuppressionEntry("domain", domain, reason))
        inserted = await suppression_service.add_many(
            session,
            user_id=self.list.user_id,
            entries=entries,
            source=f"import:{self.list.file_name}",
        )
        return inserted, len(entries) - inserted, 0


def _sink_for(recipient_list: RecipientList) -> Any:
    if recipient_list.kind == ListKind.suppressions:
        return _SuppressionSink(recipient_list)
    if recipient_list.kind == ListKind.directory:
        from outreach.recipient.directory_sink import DirectorySink

        return DirectorySink(recipient_list)
    return _RecipientSink(recipient_list)


import_service = ImportService()
