from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Enum, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from outreach.models.base import RecordModel


class ListKind(enum.StrEnum):
    recipients = "recipients"  # a user's recipient list
    suppressions = "suppressions"  # a user's suppression CSV, imported into suppressions
    directory = "directory"  # an admin's import into the recipient directory


class ListStatus(enum.StrEnum):
    queued = "queued"
    processing = "processing"
    ready = "ready"
    failed = "failed"


class RecipientList(RecordModel):
    """A list of recipients and, when it came from a file, the import's state.

    The same row tracks imports of suppression CSVs and of the admin directory
    (``kind``), so one import machinery serves all three.
    """

    __tablename__ = "recipient_lists"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[ListKind] = mapped_column(
        Enum(ListKind, native_enum=False, length=20), default=ListKind.recipients
    )
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[ListStatus] = mapped_column(
        Enum(ListStatus, native_enum=False, length=20), default=ListStatus.queued
    )
    file_key: Mapped[str | None] = mapped_column(String(512))
    file_name: Mapped[str | None] = mapped_column(String(255))
    file_format: Mapped[str | None] = mapped_column(String(10))  # csv | xlsx; None: by hand
    file_size: Mapped[int] = mapped_column(default=0)
    sheet_name: Mapped[str | None] = mapped_column(String(200))
    csv_delimiter: Mapped[str | None] = mapped_column(String(1))
    headers: Mapped[list[str]] = mapped_column(JSON, default=list)
    column_mapping: Mapped[dict[str, Any]] = mapped_column(default=dict)
    mapping_overrides: Mapped[dict[str, Any]] = mapped_column(default=dict)
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    rows_total: Mapped[int | None]
    rows_done: Mapped[int] = mapped_column(default=0)
    imported_count: Mapped[int] = mapped_column(default=0)
    duplicate_count: Mapped[int] = mapped_column(default=0)
    invalid_count: Mapped[int] = mapped_column(default=0)
    suppressed_count: Mapped[int] = mapped_column(default=0)
    next_position: Mapped[int] = mapped_column(default=0)
    resume_offset: Mapped[int] = mapped_column(default=0)  # bytes of the parsed CSV done
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class RecipientImportError(RecordModel):
    """One row of an import that could not be used, and why."""

    __tablename__ = "recipient_import_errors"

    list_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("recipient_lists.id", ondelete="CASCADE"), index=True
    )
    row: Mapped[int]
    column: Mapped[str | None] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(String(500))
    value: Mapped[str | None] = mapped_column(String(200))
