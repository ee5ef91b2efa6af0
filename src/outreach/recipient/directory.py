"""The recipient directory: contacts curated by admins (``system_recipients``),
imported with the list machinery, re-verified periodically, and searchable by
users, who can copy entries into their own lists."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import Select, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.config import get_settings
from outreach.kit.audit import record_audit
from outreach.kit.clock import utcnow
from outreach.kit.db import Database
from outreach.kit.jobs import enqueue_after_commit
from outreach.kit.pagination import Pagination, paginate
from outreach.models import (
    ListStatus,
    RecipientList,
    SystemRecipient,
    VerificationJob,
    VerificationJobKind,
    VerificationJobStatus,
)
from outreach.recipient.addresses import normalise_email
from outreach.recipient.importing import import_service
from outreach.recipient.lists import ListNotReady
from outreach.recipient.mapping import MappedRow
from outreach.recipient.verification import verification_service

REFRESH_JOB = "recipient.refresh_directory"


class DirectoryService:
    def searchable_statement(
        self,
        *,
        search: str | None,
        company: str | None,
        industry: str | None,
        location: str | None,
        title: str | None,
        for_users: bool,
    ) -> Select[SystemRecipient]:
        statement = select(SystemRecipient)
        if for_users:  # users never see addresses known to bounce
            statement = statement.where(SystemRecipient.verification_status != "undeliverable")
        for column, value in (
            (SystemRecipient.company, company),
            (SystemRecipient.industry, industry),
            (SystemRecipient.location, location),
            (SystemRecipient.title, title),
        ):
            if value:
                statement = statement.where(func.lower(column).like(f"%{value.lower()}%"))
        if search:
            pattern = f"%{search.lower()}%"
            statement = statement.where(
                or_(
                    SystemRecipient.email.like(pattern),
                    func.lower(SystemRecipient.company).like(pattern),
                    func.lower(SystemRecipient.contact_name).like(pattern),
                    func.lower(SystemRecipient.title).like(pattern),
                )
            )
        return statement

    async def list_entries(
        self, session: AsyncSession, *, pagination: Pagination, for_users: bool, **filters: Any
    ) -> tuple[list[SystemRecipient], str | None]:
        """Directory entries, newest first, filtered."""
        return await paginate(
            session,
            self.searchable_statement(for_users=for_users, **filters),
            pagination,
            created_at=SystemRecipient.created_at,
            id_column=SystemRecipient.id,
        )

    async def add_to_list(
        self,
        session: AsyncSession,
        *,
        recipient_list: RecipientList,
        ids: list[uuid.UUID],
    ) -> tuple[int, int, int]:
        """Copy directory entries into the user's list; returns (added, duplicates, suppressed)."""
        if recipient_list.status != ListStatus.ready:
            raise ListNotReady("wait until the import has finished")
        entries = list(
            await session.scalars(
                select(SystemRecipient)
                .where(
                    SystemRecipient.id.in_(ids),
                    SystemRecipient.verification_status != "undeliverable",
                )
                .order_by(SystemRecipient.company, SystemRecipient.email)
            )
        )
        position = max(recipient_list.next_position, 1)
        rows = []
        for entry in entries:
            name = entry.contact_name
            fields: dict[str, str | None] = {
                "name": name,
                "company": entry.company,
                "title": entry.title,
                "website": entry.domain,
                "source": "directory",
            }
            rows.append(MappedRow(position, normalise_email(entry.email), fields))
            position += 1
        added, duplicates, suppressed = await import_service.add_rows_by_hand(
            session, recipient_list=recipient_list, rows=rows
        )
        recipient_list.next_position = position
        recipient_list.imported_count += added
        return added, duplicates, suppressed

    async def start_refresh(
        self, session: AsyncSession, *, actor_id: uuid.UUID, older_than_days: int
    ) -> VerificationJob:
        """Queue re-verification of entries never verified or verified too long ago."""
        cutoff = utcnow() - timedelta(days=older_than_days)
        total = await session.scalar(
            select(func.count()).select_from(SystemRecipient).where(self._stale(cutoff))
        )
        job = VerificationJob(
            id=uuid.uuid4(),
            user_id=actor_id,
            kind=VerificationJobKind.directory_refresh.value,
            status=VerificationJobStatus.queued.value,
            total=total or 0,
            counts={},
            results=[],
            input={"cutoff": cutoff.isoformat()},
        )
        session.add(job)
        await session.flush()
        await record_audit(
            session,
            action="recipient.directory_refresh",
            actor_id=actor_id,
            target_type="verification_job",
            target_id=job.id,
            details={"older_than_days": older_than_days, "entries": job.total},
        )
        enqueue_after_commit(session, REFRESH_JOB, job_id=str(job.id))
        return job

    def _stale(self, cutoff: Any) -> Any:
        return or_(SystemRecipient.verified_at.is_(None), SystemRecipient.verified_at < cutoff)

    async def run_refresh(self, database: Database, *, job_id: uuid.UUID) -> None:
        """The job: re-verify stale entries in batches (DNS checks, no credits)."""
        from datetime import datetime

        size = get_settings().verify_batch_size
        async with database.session() as session:
            job = await session.get(VerificationJob, job_id)
            if job is None or job.status == "completed":
                return
            job.status = VerificationJobStatus.running.value
            cutoff = datetime.fromisoformat(job.input["cutoff"])
        known: dict[str, Any] = {}
        after: uuid.UUID | None = None
        while True:
            async with database.session() as session:
                statement = select(SystemRecipient.id, SystemRecipient.email).where(
                    self._stale(cutoff)
                )
                if after is not None:
                    statement = statement.where(SystemRecipient.id > after)
                batch = list(
                    await session.execute(statement.order_by(SystemRecipient.id).limit(size))
                )
                if not batch:
                    break
                outcomes = await verification_service.verify_addresses(
                    session, [email for _, email in batch], known=known
                )
                now = utcnow()
                for (entry_id, _), outcome in zip(batch, outcomes, strict=True):
                    await session.execute(
                        update(SystemRecipient)
                        .where(SystemRecipient.id == entry_id)
                        .values(
                            verification_status=outcome.status,
                            verification_reasons=outcome.reasons,
                            verified_at=now,
                        )
                    )
                job = await session.get(VerificationJob, job_id, with_for_update=True)
                assert job is not None
                counts = dict(job.counts)
                for outcome in outcomes:
                    counts[outcome.status] = counts.get(outcome.status, 0) + 1
                job.counts, job.done = counts, job.done + len(batch)
                after = batch[-1][0]
        async with database.session() as session:
            job = await session.get(VerificationJob, job_id, with_for_update=True)
            if job is not None:
                job.status = VerificationJobStatus.completed.value
                job.finished_at = utcnow()


directory_service = DirectoryService()
