from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Path

from outreach.models import RecipientList, VerificationJob
from outreach.recipient.schemas import (
    ListCounts,
    ListProgress,
    RecipientListOut,
    VerificationJobOut,
)

ListID = Annotated[uuid.UUID, Path(description="The list's id")]
JobID = Annotated[uuid.UUID, Path(description="The job's id")]


def list_out(recipient_list: RecipientList, recipient_count: int | None = None) -> RecipientListOut:
    total = recipient_list.rows_total
    if recipient_list.status in ("ready", "failed") and recipient_list.finished_at is not None:
        percent = 100.0
    elif total:
        percent = round(min(recipient_list.rows_done / total, 1.0) * 100, 1)
    else:
        percent = 0.0
    return RecipientListOut(
        id=recipient_list.id,
        name=recipient_list.name,
        kind=recipient_list.kind.value,
        status=recipient_list.status.value,
        file_name=recipient_list.file_name,
        file_format=recipient_list.file_format,
        sheet_name=recipient_list.sheet_name,
        headers=list(recipient_list.headers or []),
        column_mapping=dict(recipient_list.column_mapping or {}),
        progress=ListProgress(
            rows_done=recipient_list.rows_done, rows_total=total, percent=percent
        ),
        counts=ListCounts(
            imported=recipient_list.imported_count,
            duplicates=recipient_list.duplicate_count,
            invalid=recipient_list.invalid_count,
            suppressed=recipient_list.suppressed_count,
        ),
        recipient_count=recipient_count,
        error=recipient_list.error,
        created_at=recipient_list.created_at,
        finished_at=recipient_list.finished_at,
    )


def job_out(job: VerificationJob, *, with_results: bool = False) -> VerificationJobOut:
    return VerificationJobOut(
        id=job.id,
        kind=job.kind,
        status=job.status,
        list_id=job.list_id,
        total=job.total,
        done=job.done,
        credits_charged=job.credits_charged,
        credits_refunded=job.credits_refunded,
        counts=dict(job.counts or {}),
        results=list(job.results or []) if with_results else None,
        error=job.error,
        created_at=job.created_at,
        finished_at=job.finished_at,
    )
