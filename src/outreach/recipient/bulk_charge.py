"""One bulk job per idempotency key, and the job's debit tied to it.

Bulk verification and enrichment are paid up front and settled at the end. The
debit's ledger key is the caller's (``verify:bulk:<user>:<key>``); the job records
it (``verification_jobs.charge_key``, unique), so that

* the same user and key give back the job that holds the key, whoever calls the
  service (the API, a page, a workflow, the CLI), and debit nothing new;
* two calls racing with one key both debit through the ledger, whose unique key
  lets one entry in: the loser sees an entry that names another job and answers
  with that job, having added nothing;
* a settlement refunds at most what the job's own debit took
  (:meth:`CreditService.debited`), never a debit that paid for another job.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from outreach.credits.service import LedgerKeyReused, credit_service, ledger_key
from outreach.kit.errors import Conflict
from outreach.models import VerificationJob, VerificationJobKind


class BulkKeyUsed(Conflict):
    code, title = "idempotency_key_reused", "Idempotency key used for an earlier job"


def charge_key(scope: str, *, user_id: uuid.UUID, idempotency_key: str) -> str:
    """The ledger key of a bulk job's debit, as the ledger stores it."""
    return ledger_key(f"{scope}:{user_id}:{idempotency_key}")


async def key_and_holder(
    session: AsyncSession, scope: str, *, user_id: uuid.UUID, idempotency_key: str
) -> tuple[str, VerificationJob | None]:
    """The ledger key of a new bulk job's debit, and the job already started under it
    (None: the key is new; a caller given a job returns it and charges nothing)."""
    key = charge_key(scope, user_id=user_id, idempotency_key=idempotency_key)
    return key, await job_holding(session, user_id=user_id, charge_key=key)


async def job_holding(
    session: AsyncSession, *, user_id: uuid.UUID, charge_key: str
) -> VerificationJob | None:
    """The job already started under ``charge_key`` (None: the key is new)."""
    return await session.scalar(
        select(VerificationJob).where(
            VerificationJob.user_id == user_id, VerificationJob.charge_key == charge_key
        )
    )


async def charge(session: AsyncSession, *, job: VerificationJob, reason: str) -> VerificationJob:
    """Debit ``job.credits_charged`` under ``job.charge_key``, the entry naming the job.

    Returns ``job`` when the debit is its own: the caller then adds the job. Returns
    the job that holds the key when another call with the same key debited first (a
    concurrent call that has committed since): nothing was charged, and ``job`` must
    be dropped. A 402 raises having charged nothing."""
    assert job.user_id is not None
    assert job.charge_key is not None
    try:
        entry = await credit_service.apply_ledger_entry(
            session,
            user_id=job.user_id,
            delta=-job.credits_charged,
            reason=reason,
            ref=job_ref(job),
            idempotency_key=job.charge_key,
        )
    except LedgerKeyReused:
        entry = None  # the first call with this key charged another amount
    if entry is not None and entry.ref == job_ref(job):
        return job
    holder = await job_holding(session, user_id=job.user_id, charge_key=job.charge_key)
    if holder is None:
        # The key paid for a job started before jobs recorded their key.
        raise BulkKeyUsed("this idempotency key was used for an earlier job; use a new key")
    return holder


async def refundable(session: AsyncSession, *, job: VerificationJob) -> int:
    """The most a settlement of ``job`` may refund: what its own debit took."""
    assert job.user_id is not None
    return await credit_service.debited(
        session, user_id=job.user_id, idempotency_key=job.charge_key, ref=job_ref(job)
    )


def job_ref(job: VerificationJob) -> str:
    """The ``ref`` of the job's ledger entries (its debit and its refund)."""
    prefix = "enrich_job" if job.kind == VerificationJobKind.enrich else "verification_job"
    return f"{prefix}:{job.id}"
