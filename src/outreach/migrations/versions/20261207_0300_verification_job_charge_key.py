"""verification_jobs.charge_key: the ledger key of a bulk job's debit, unique

A bulk verification or enrichment called twice with the same idempotency key outside
the HTTP layer (a job, a page, a workflow, two racing requests) made a second job
whose debit was a replay of the first, yet whose settlement refunded again. The job
now records the key of the debit it owns: one job per key (this unique index), and a
settlement refunds at most what that debit took.

Jobs not yet settled get the key of the debit whose ``ref`` names them; a job whose
debit was such a replay keeps none, and is refunded nothing.

Revision ID: 20261207chargekey
Revises: 3f5b9e2c7a10
Create Date: 2026-12-07 03:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261207chargekey"
down_revision: str | tuple[str, ...] | None = "3f5b9e2c7a10"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_REF_PREFIX = {"verify": "verification_job", "enrich": "enrich_job"}


def upgrade() -> None:
    with op.batch_alter_table("verification_jobs") as batch:
        batch.add_column(sa.Column("charge_key", sa.String(length=300), nullable=True))
    op.create_index(
        "ix_verification_jobs_charge_key", "verification_jobs", ["charge_key"], unique=True
    )
    _backfill_unsettled_jobs()


def _backfill_unsettled_jobs() -> None:
    jobs = sa.table(
        "verification_jobs",
        sa.column("id", sa.Uuid()),
        sa.column("kind", sa.String()),
        sa.column("status", sa.String()),
        sa.column("charge_key", sa.String()),
    )
    ledger = sa.table(
        "ledger_entries",
        sa.column("ref", sa.String()),
        sa.column("delta", sa.Integer()),
        sa.column("reason", sa.String()),
        sa.column("idempotency_key", sa.String()),
    )
    connection = op.get_bind()
    unsettled = connection.execute(
        sa.select(jobs.c.id, jobs.c.kind).where(
            jobs.c.kind.in_(list(_REF_PREFIX)), jobs.c.status.in_(["queued", "running"])
        )
    ).all()
    if not unsettled:
        return
    # One pass over the bulk debits (few), not one scan of the ledger per job.
    debits = connection.execute(
        sa.select(ledger.c.ref, ledger.c.idempotency_key).where(
            ledger.c.reason.in_(list(_REF_PREFIX)),
            ledger.c.delta < 0,
            ledger.c.idempotency_key.like("%:bulk:%"),
        )
    ).all()
    key_of: dict[str, str] = {row.ref: row.idempotency_key for row in debits}
    for job_id, kind in unsettled:
        key = key_of.get(f"{_REF_PREFIX[kind]}:{job_id}")
        if key is not None:
            connection.execute(sa.update(jobs).where(jobs.c.id == job_id).values(charge_key=key))


def downgrade() -> None:
    op.drop_index("ix_verification_jobs_charge_key", table_name="verification_jobs")
    with op.batch_alter_table("verification_jobs") as batch:
        batch.drop_column("charge_key")
