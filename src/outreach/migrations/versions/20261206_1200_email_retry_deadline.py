"""scheduled_emails.retry_deadline: how long a failure that sent nothing is retried

Revision ID: 20261206retry
Revises: 5e4d0e1ma1me
Create Date: 2026-12-06 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from outreach.kit.db import UTCDateTime

revision: str = "20261206retry"
down_revision: str | tuple[str, ...] | None = "5e4d0e1ma1me"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("scheduled_emails") as batch:
        batch.add_column(sa.Column("retry_deadline", UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("scheduled_emails") as batch:
        batch.drop_column("retry_deadline")
