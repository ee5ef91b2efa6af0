"""Recipient lists: reading, paging, exporting, deleting and adding by hand."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, delete, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.kit.db import Database
from outreach.kit.errors import Conflict, FieldError, NotFound, Unprocessable
from outreach.kit.pagination import InvalidCursor, Pagination, paginate
from outreach.kit.signing import InvalidSignature, sign, unsign
from outreach.kit.storage import Storage
from outreach.models import (
    ListKind,
    ListStatus,
    Recipient,
    RecipientImportError,
    RecipientList,
)
from outreach.recipient.addresses import InvalidAddress, normalise_email
from outreach.recipient.importing import import_service
from outreach.recipient.mapping import MappedRow, custom_field_key
from outreach.recipient.schemas import RecipientCreate

EXPORT_COLUMNS = (
    "email",
    "name",
    "first_name",
    "last_name",
    "company",
    "title",
    "linkedin",
    "website",
    "timezone",
    "verification_status",
    "verification_reasons",
)
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\x00")
_CURSOR_PURPOSE = "recipient-position-cursor"


class ListNotFound(NotFound):
    code, title = "list_not_found", "Recipient list not found"


class ListNotReady(Conflict):
    code, title = "list_not_ready", "The list is still importing"


class InvalidRecipients(Unprocessable):
    code, title = "invalid_recipients", "Some recipients are not valid"


def safe_cell(value: Any) -> str:
    """A CSV cell a spreadsheet will not run as a formula (a leading ``= + - @``,
    tab, CR or NUL gets a ``'`` in front)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def encode_position_cursor(position: int, row_id: uuid.UUID, secret: bytes) -> str:
    return sign({"p": position, "i": str(row_id)}, secret=secret.decode(), purpose=_CURSOR_PURPOSE)


def decode_position_cursor(cursor: str, secret: bytes) -> tuple[int, uuid.UUID]:
    try:
        payload = unsign(cursor, secret=secret.decode(), purpose=_CURSOR_PURPOSE)
        return int(payload["p"]), uuid.UUID(payload["i"])
    except (InvalidSignature, KeyError, ValueError, TypeError) as exc:
        raise InvalidCursor("the cursor is not one this API returned") from exc


@dataclass(frozen=True)
class ListCoverage:
    """A list and how many of its recipients carry each verification status."""

    list_id: uuid.UUID
    name: str
    status: ListStatus
    by_verification: dict[str, int]

    @property
    def recipients(self) -> int:
        return sum(self.by_verification.values())

    @property
    def unverified(self) -> int:
        return self.by_verification.get("unverified", 0)


class ListService:
    def readable_statement(
        self, user_id: uuid.UUID, kind: ListKind = ListKind.recipients
    ) -> Select[RecipientList]:
        return select(RecipientList).where(
            RecipientList.user_id == user_id, RecipientList.kind == kind
        )

    async def get_list(
        self,
        session: AsyncSession,
        *,
        user_id: uuid.UUID,
        list_id: uuid.UUID,
        kind: ListKind = ListKind.recipients,
    ) -> RecipientList:
        """The user's list (another user's is not found)."""
        found = await session.scalar(
            self.readable_statement(user_id, kind).where(RecipientList.id == list_id)
        )
        if found is None:
            raise ListNotFound("no such list")
        return found

    async def create_list(
        self, session: AsyncSession, *, user_id: uuid.UUID, name: str
    ) -> RecipientList:
        """An empty list, ready for recipients added by hand or from the directory."""
        recipient_list = RecipientList(
            user_id=user_id,
            kind=ListKind.recipients,
            name=name,
            status=ListStatus.ready,
            headers=[],
            column_mapping={},
            mapping_overrides={},
            options={},
            next_position=1,
        )
        session.add(recipient_list)
        await session.flush()
        return recipient_list

    async def list_lists(
        self, session: AsyncSession, *, user_id: uuid.UUID, pagination: Pagination
    ) -> tuple[list[RecipientList], str | None]:
        """The user's recipient lists, newest first."""
        return await paginate(
            session,
            self.readable_statement(user_id),
            pagination,
            created_at=RecipientList.created_at,
            id_column=RecipientList.id,
        )

    async def verification_coverage(
        self, session: AsyncSession, *, user_id: uuid.UUID, limit: int = 20
    ) -> list[ListCoverage]:
        """The user's newest recipient lists, each with its recipients counted by
        verification status (two queries)."""
        lists = list(
            await session.scalars(
                self.readable_statement(user_id)
                .order_by(RecipientList.created_at.desc(), RecipientList.id.desc())
                .limit(limit)
            )
        )
        rows = await session.execute(
            select(Recipient.list_id, Recipient.verification_status, func.count())
            .where(Recipient.list_id.in_([item.id for item in lists]))
            .group_by(Recipient.list_id, Recipient.verification_status)
        )
        counts: dict[uuid.UUID, dict[str, int]] = {item.id: {} for item in lists}
        for list_id, status, count in rows:
            counts[list_id][status] = count
        return [ListCoverage(item.id, item.name, item.status, counts[item.id]) for item in lists]

    async def count_recipients(self, session: AsyncSession, *, list_id: uuid.UUID) -> int:
        count = await session.scalar(
            select(func.count()).select_from(Recipient).where(Recipient.list_id == list_id)
        )
        return count or 0

    async def list_items(
        self,
        session: AsyncSession,
        *,
        recipient_list: RecipientList,
        limit: int,
        cursor: str | None,
        secret: bytes,
        status: str | None = None,
        search: str | None = None,
    ) -> tuple[list[Recipient], str | None]:
        """A page of the list's recipients in file order, optionally filtered."""
        statement = select(Recipient).where(Recipient.list_id == recipient_list.id)
        if status is not None:
            statement = statement.where(Recipient.verification_status == status)
        if search:
            pattern = f"%{search.lower()}%"
            statement = statement.where(
                or_(
                    Recipient.email.like(pattern),
                    func.lower(Recipient.name).like(pattern),
                    func.lower(Recipient.company).like(pattern),
                    func.lower(Recipient.title).like(pattern),
                )
            )
        if cursor:
            position, after_id = decode_position_cursor(cursor, secret)
            statement = statement.where(
                or_(
                    Recipient.position > position,
                    (Recipient.position == position) & (Recipient.id > after_id),
                )
            )
        rows = list(
            (
                await session.scalars(
                    statement.order_by(Recipient.position, Recipient.id).limit(limit + 1)
                )
            ).all()
        )
        if len(rows) <= limit:
            return rows, None
        rows = rows[:limit]
        return rows, encode_position_cursor(rows[-1].position, rows[-1].id, secret)

    async def list_errors(
        self,
        session: AsyncSession,
        *,
        recipient_list: RecipientList,
        limit: int,
        cursor: str | None,
        secret: bytes,
    ) -> tuple[list[RecipientImportError], str | None]:
        """A page of the import's row errors, in row order."""
        statement = select(RecipientImportError).where(
            RecipientImportError.list_id == recipient_list.id
        )
        if cursor:
            row, after_id = decode_position_cursor(cursor, secret)
            statement = statement.where(
                or_(
                    RecipientImportError.row > row,
                    (RecipientImportError.row == row) & (RecipientImportError.id > after_id),
                )
            )
        statement = statement.order_by(RecipientImportError.row, RecipientImportError.id)
        rows = list((await session.scalars(statement.limit(limit + 1))).all())
        if len(rows) <= limit:
            return rows, None
        rows = rows[:limit]
        return rows, encode_position_cursor(rows[-1].row, rows[-1].id, secret)

    async def errors_csv(self, session: AsyncSession, *, recipient_list: RecipientList) -> str:
        """Every row error of the import as CSV, in row order; cells are formula-safe."""
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["row", "column", "reason", "value"])
        errors = await session.scalars(
            select(RecipientImportError)
            .where(RecipientImportError.list_id == recipient_list.id)
            .order_by(RecipientImportError.row, RecipientImportError.id)
        )
        for error in errors:
            writer.writerow(
                [safe_cell(v) for v in (error.row, error.column, error.reason, error.value)]
            )
        return buffer.getvalue()

    async def export_csv(
        self, database: Database, *, list_id: uuid.UUID, batch: int = 2000
    ) -> AsyncIterator[str]:
        """The list as CSV text, streamed in batches from its own session (the request's
        session is closed before the body is sent). Cells are formula-injection safe."""
        async with database.session() as session:
            custom_keys = sorted(
                {
                    key
                    for fields in await session.scalars(
                        select(Recipient.custom_fields).where(Recipient.list_id == list_id)
                    )
                    for key in (fields or {})
                }
            )
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow([*EXPORT_COLUMNS, *custom_keys])
        after: tuple[int, uuid.UUID] | None = None
        while True:
            async with database.session() as session:
                statement = select(Recipient).where(Recipient.list_id == list_id)
                if after is not None:
                    statement = statement.where(
                        or_(
                            Recipient.position > after[0],
                            (Recipient.position == after[0]) & (Recipient.id > after[1]),
                        )
                    )
                rows = list(
                    (
                        await session.scalars(
                            statement.order_by(Recipient.position, Recipient.id).limit(batch)
                        )
                    ).all()
                )
            for recipient in rows:
                values = [getattr(recipient, column) for column in EXPORT_COLUMNS[:-1]]
                values.append(";".join(recipient.verification_reasons or []))
                values += [(recipient.custom_fields or {}).get(key) for key in custom_keys]
                writer.writerow([safe_cell(value) for value in values])
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            if len(rows) < batch:
                return
            after = (rows[-1].position, rows[-1].id)

    async def delete_list(
        self, session: AsyncSession, *, storage: Storage, recipient_list: RecipientList
    ) -> None:
        """Delete a list, its recipients, its row errors and its stored file."""
        await session.execute(delete(Recipient).where(Recipient.list_id == recipient_list.id))
        await session.execute(
            delete(RecipientImportError).where(RecipientImportError.list_id == recipient_list.id)
        )
        file_key = recipient_list.file_key
        await session.delete(recipient_list)
        await session.flush()
        if file_key:
            await storage.delete(file_key)

    async def add_recipients(
        self, session: AsyncSession, *, recipient_list: RecipientList, items: list[RecipientCreate]
    ) -> tuple[int, int, int]:
        """Add recipients by hand: all valid or none (422 naming each bad item)."""
        if recipient_list.status != ListStatus.ready:
            raise ListNotReady("wait until the import has finished")
        rows: list[MappedRow] = []
        errors: list[FieldError] = []
        locked = await session.scalar(
            select(RecipientList).where(RecipientList.id == recipient_list.id).with_for_update()
        )
        assert locked is not None
        position = max(locked.next_position, 1)
        for index, item in enumerate(items):
            try:
                address = normalise_email(item.email)
            except InvalidAddress as exc:
                errors.append(FieldError(loc=["body", "items", index, "email"], message=str(exc)))
                continue
            fields = item.model_dump(exclude={"email", "custom_fields"})
            fields["source"] = "manual"
            custom = {
                custom_field_key(key, n): value
                for n, (key, value) in enumerate(item.custom_fields.items())
            }
            rows.append(MappedRow(position, address, fields, custom))
            position += 1
        if errors:
            raise InvalidRecipients(
                f"{len(errors)} of {len(items)} items are invalid", errors=errors
            )
        unique: dict[str, MappedRow] = {}
        for row in rows:
            if row.address is not None:
                unique.setdefault(row.address.email, row)  # the first spelling wins
        added, duplicates, suppressed = await import_service.add_rows_by_hand(
            session, recipient_list=locked, rows=list(unique.values())
        )
        locked.next_position = position
        locked.imported_count += added
        return added, duplicates + len(rows) - len(unique), suppressed


list_service = ListService()
