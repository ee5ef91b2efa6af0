"""The data export: a ZIP of everything held about a user.

``account.json`` names the user, the export time and every other file;
``data/<table>.json`` holds the user's rows of each table as JSON arrays, every
column except secrets (encrypted tokens and passwords, session token hashes);
``files/`` holds what the user uploaded, byte for byte (resumes and recipient
list files). Rows are read in batches and written as they come, into a
temporary file that spills to disk, so a large account is never held in memory
at once.
"""

from __future__ import annotations

import asyncio
import base64
import enum
import json
import tempfile
import uuid
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

from sqlalchemy import Select, inspect, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import undefer

from outreach.kit.clock import utcnow
from outreach.kit.storage import ObjectNotFound, Storage
from outreach.models import (
    AuditLog,
    Campaign,
    CreditAccount,
    EmailVerification,
    LedgerEntry,
    Mailbox,
    PaymentOrder,
    Recipient,
    RecipientImportError,
    RecipientList,
    ReferralReward,
    Resume,
    ResumeAnalysis,
    ScheduledEmail,
    Suppression,
    Template,
    TemplateVersion,
    User,
    UserSession,
    VerificationJob,
)

FORMAT_VERSION = 1
BATCH = 500
SPOOL_BYTES = 8 * 1024 * 1024
# Never exported: they would let the holder of the file act as the user.
SECRET_COLUMNS = frozenset(
    {"refresh_token_encrypted", "access_token_encrypted", "smtp_password_encrypted", "token_hash"}
)


def plain(value: Any) -> Any:
    """A column value as JSON: ids and enums as strings, times in ISO 8601, bytes
    (an email's stored MIME) in base64."""
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    return value


def row_data(row: object) -> dict[str, Any]:
    """Every column of an ORM row except secrets."""
    return {
        attribute.key: plain(getattr(row, attribute.key))
        for attribute in inspect(row).mapper.column_attrs
        if attribute.key not in SECRET_COLUMNS
    }


def _sections(user_id: uuid.UUID) -> dict[str, Select[Any]]:
    """Each exported table with the statement selecting the user's rows."""
    lists = select(RecipientList.id).where(RecipientList.user_id == user_id)
    templates = select(Template.id).where(Template.user_id == user_id)
    return {
        "sessions": select(UserSession).where(UserSession.user_id == user_id),
        "ledger_entries": select(LedgerEntry).where(LedgerEntry.user_id == user_id),
        "payment_orders": select(PaymentOrder).where(PaymentOrder.user_id == user_id),
        "referral_rewards": select(ReferralReward).where(
            or_(ReferralReward.referrer_id == user_id, ReferralReward.referred_id == user_id)
        ),
        "mailboxes": select(Mailbox).where(Mailbox.user_id == user_id),
        "resumes": select(Resume).where(Resume.user_id == user_id),
        "resume_analyses": select(ResumeAnalysis).where(ResumeAnalysis.user_id == user_id),
        "recipient_lists": select(RecipientList).where(RecipientList.user_id == user_id),
        "recipients": select(Recipient).where(Recipient.user_id == user_id),
        "recipient_import_errors": select(RecipientImportError).where(
            RecipientImportError.list_id.in_(lists)
        ),
        "suppressions": select(Suppression).where(Suppression.user_id == user_id),
        "verification_jobs": select(VerificationJob).where(VerificationJob.user_id == user_id),
        "email_verifications": select(EmailVerification).where(
            EmailVerification.user_id == user_id
        ),
        "templates": select(Template).where(Template.user_id == user_id),
        "template_versions": select(TemplateVersion).where(
            TemplateVersion.template_id.in_(templates)
        ),
        "campaigns": select(Campaign).where(Campaign.user_id == user_id),
        "emails": select(ScheduledEmail)
        .where(ScheduledEmail.user_id == user_id)
        .options(undefer(ScheduledEmail.mime)),
        "activity": select(AuditLog).where(AuditLog.actor_id == user_id),
    }


@dataclass
class ExportSummary:
    counts: dict[str, int] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    missing_files: list[str] = field(default_factory=list)


class _Zip:
    """A ZIP written in a worker thread (zipfile and the spill file block)."""

    def __init__(self) -> None:
        self.file: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115
        self.archive = zipfile.ZipFile(self.file, "w", compression=zipfile.ZIP_DEFLATED)

    async def write(self, name: str, data: bytes) -> None:
        await asyncio.to_thread(self.archive.writestr, name, data)

    async def write_chunks(self, name: str, chunks: AsyncIterator[bytes]) -> None:
        entry = await asyncio.to_thread(self.archive.open, name, "w", force_zip64=True)
        try:
            async for chunk in chunks:
                await asyncio.to_thread(entry.write, chunk)
        finally:
            await asyncio.to_thread(entry.close)

    async def finish(self) -> IO[bytes]:
        await asyncio.to_thread(self.archive.close)
        await asyncio.to_thread(self.file.seek, 0)
        return self.file


async def _json_array(
    session: AsyncSession, statement: Select[Any], counter: list[int]
) -> AsyncIterator[bytes]:
    """The rows of ``statement`` as one JSON array, a batch at a time."""
    yield b"["
    first = True
    result = await session.stream_scalars(
        statement.order_by(None).execution_options(yield_per=BATCH)
    )
    async for rows in result.partitions(BATCH):
        text = ",".join(json.dumps(row_data(row), ensure_ascii=False) for row in rows)
        yield (text if first else "," + text).encode()
        first = False
        counter[0] += len(rows)
    yield b"]"


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._- " else "_" for c in name).strip() or "file"


async def _uploaded_files(session: AsyncSession, user_id: uuid.UUID) -> list[tuple[str, str]]:
    """(storage key, name in the ZIP) of every file the user uploaded."""
    resumes = await session.execute(
        select(Resume.id, Resume.file_key, Resume.file_name).where(Resume.user_id == user_id)
    )
    lists = await session.execute(
        select(RecipientList.id, RecipientList.file_key, RecipientList.file_name).where(
            RecipientList.user_id == user_id, RecipientList.file_key.is_not(None)
        )
    )
    files = [(key, f"files/resumes/{id_}/{_safe_name(name)}") for id_, key, name in resumes]
    files += [
        (key, f"files/lists/{id_}/{_safe_name(name or 'upload')}")
        for id_, key, name in lists
        if key is not None
    ]
    return files


async def build_export(
    session: AsyncSession, *, storage: Storage, user: User
) -> tuple[IO[bytes], ExportSummary]:
    """The ZIP (positioned at its start) and what it holds."""
    archive = _Zip()
    summary = ExportSummary()
    try:
        for name, statement in _sections(user.id).items():
            counter = [0]
            await archive.write_chunks(
                f"data/{name}.json", _json_array(session, statement, counter)
            )
            summary.counts[name] = counter[0]
        for key, name in await _uploaded_files(session, user.id):
            try:
                await archive.write_chunks(name, storage.open(key))
                summary.files.append(name)
            except ObjectNotFound:
                summary.missing_files.append(name)
        manifest = _manifest(user, summary, await _balance(session, user))
        await archive.write("account.json", manifest)
        return await archive.finish(), summary
    except BaseException:
        archive.file.close()
        raise


async def _balance(session: AsyncSession, user: User) -> int:
    balance = await session.scalar(
        select(CreditAccount.balance).where(CreditAccount.user_id == user.id)
    )
    return balance or 0


def _manifest(user: User, summary: ExportSummary, balance: int) -> bytes:
    manifest = {
        "format_version": FORMAT_VERSION,
        "exported_at": utcnow().isoformat(),
        "profile": row_data(user),
        "credit_balance": balance,
        "tables": {f"data/{name}.json": count for name, count in summary.counts.items()},
        "files": summary.files,
        "missing_files": summary.missing_files,
    }
    return json.dumps(manifest, ensure_ascii=False, indent=2).encode()


def iter_file(file: IO[bytes], chunk_size: int = 256 * 1024) -> AsyncIterator[bytes]:
    """Stream ``file`` (closing it at the end) without blocking the event loop."""

    async def chunks() -> AsyncIterator[bytes]:
        try:
            while chunk := await asyncio.to_thread(file.read, chunk_size):
                yield chunk
        finally:
            file.close()

    return chunks()
