"""Recipient jobs: list imports and the directory refresh.

Bulk verification and enrichment run as checkpointed graphs: their jobs are in
:mod:`outreach.workflow.tasks`.
"""

from __future__ import annotations

import uuid

from outreach.kit.db import get_database
from outreach.kit.jobs import job
from outreach.recipient.directory import REFRESH_JOB, directory_service
from outreach.recipient.importing import IMPORT_JOB, import_service


@job(IMPORT_JOB)
async def process_recipient_list_upload(list_id: str) -> None:
    """Import an uploaded list file (resumes from its last committed chunk on retry)."""
    await import_service.process_upload(get_database(), list_id=uuid.UUID(list_id))


@job(REFRESH_JOB)
async def refresh_directory(job_id: str) -> None:
    """Re-verify stale entries of the recipient directory."""
    await directory_service.run_refresh(get_database(), job_id=uuid.UUID(job_id))
