"""Jobs that run a checkpointed graph (the thread id is the job's id)."""

from __future__ import annotations

import uuid

from outreach.kit.db import get_database
from outreach.kit.jobs import job
from outreach.recipient.enrichment import ENRICH_JOB
from outreach.recipient.verification import VERIFY_JOB
from outreach.workflow.enrichment import run_enrichment_job
from outreach.workflow.verification import run_verification_job


@job(VERIFY_JOB)
async def verify_bulk(job_id: str) -> None:
    """Verify a list or a set of addresses batch by batch, then refund what could not
    be checked; a retry resumes at the next batch."""
    await run_verification_job(get_database(), job_id=uuid.UUID(job_id))


@job(ENRICH_JOB)
async def enrich_bulk(job_id: str) -> None:
    """Find and verify addresses at companies, then settle the held credits; a retry
    resumes after the last company stored."""
    await run_enrichment_job(get_database(), job_id=uuid.UUID(job_id))
