"""Recipient jobs: list imports, bulk verification, enrichment, directory refresh."""

from __future__ import annotations

import uuid

from outreach.kit.db import get_database
from outreach.kit.jobs import job
from outreach.recipient.directory import REFRESH_JOB, directory_service
from outreach.recipient.enrichment import ENRICH_JOB, enrichment_service
from outreach.recipient.importing import IMPORT_JOB, import_service
from outreach.recipient.verification import VERIFY_JOB, verification_service


@job(IMPORT_JOB)
async def process_recipient_list_upload(list_id: str) -> None:
    """Import an uploaded list file (resumes from its last committed chunk on retry)."""
    await import_service.process_upload(get_database(), list_id=uuid.UUID(list_id))


@job(VERIFY_JOB)
async def verify_bulk(job_id: str) -> None:
    """Verify a list or a set of addresses, then refund what could not be checked."""
    await verification_service.run_bulk(get_database(), job_id=uuid.UUID(job_id))


@job(ENRICH_JOB)
async def enrich_bulk(job_id: str) -> None:
    """Find and verify addresses at companies, then settle the held credits."""
    await enrichment_service.run_bulk(get_database(), job_id=uuid.UUID(job_id))


@job(REFRESH_JOB)
async def refresh_directory(job_id: str) -> None:
    """Re-verify stale entries of the recipient directory."""
    await directory_service.run_refresh(get_database(), job_id=uuid.UUID(job_id))
